#!/usr/bin/env node
// discord.js 14 scenario against a Guildhall server.
//
// Run by compat/run.py from compat/ (node_modules installed by
// scripts/compat-setup). Environment:
//   GH_BASE        http://127.0.0.1:PORT   (discord.js appends /v10 to GH_BASE/api)
//   GH_BOT_TOKEN, GH_GUILD_ID, GH_CHANNEL_ID, GH_BOT_ID,
//   GH_USER1_ID, GH_USER2_ID, GH_USER2_TOKEN, GH_TIMEOUT (s), GH_DEBUG
// The gateway URL is taken by discord.js from GET /gateway/bot.
// stdout: one JSON line per check only; logs go to stderr.
'use strict';

const { Client, GatewayIntentBits, Partials, Events, ChannelType, version } = require('discord.js');
const { WebSocketShardDestroyRecovery } = require('@discordjs/ws');

const LIB = 'discord.js';
const CHECKS = [
  'login', 'ready', 'message_create', 'message_update', 'reaction_add', 'history',
  'members_chunk', 'members_fetch', 'user2_message', 'message_delete', 'resume',
  'resume_replay', 'after_resume',
];
const EVENT_TIMEOUT = 8000;

const env = process.env;
const BASE = (env.GH_BASE || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const TOKEN = env.GH_BOT_TOKEN || '';
const GUILD_ID = env.GH_GUILD_ID || '';
const CHANNEL_ID = env.GH_CHANNEL_ID || '';
const USER1_ID = env.GH_USER1_ID || '';
const USER2_ID = env.GH_USER2_ID || '';
const USER2_TOKEN = env.GH_USER2_TOKEN || '';
const TIMEOUT = Number(env.GH_TIMEOUT || '90') * 1000;
const DEBUG = !!env.GH_DEBUG;

const t0 = Date.now();
const reported = new Map();

function log(...args) {
  console.error(new Date().toISOString(), '[djs]', ...args);
}

function report(check, ok, detail = '') {
  if (reported.has(check)) return;
  reported.set(check, ok);
  process.stdout.write(
    JSON.stringify({ lib: LIB, check, ok: !!ok, detail: String(detail), t: (Date.now() - t0) / 1000 }) + '\n',
  );
  log(ok ? 'PASS' : 'FAIL', check + ':', detail);
}

function reportMissing(reason) {
  for (const c of CHECKS) if (!reported.has(c)) report(c, false, reason);
}

function errtext(e) {
  if (!e) return String(e);
  const parts = [`${e.name || 'Error'}: ${e.message}`];
  if (e.method && e.url) parts.push(`(${e.method.toUpperCase()} ${e.url} -> ${e.status})`);
  if (e.rawError) parts.push(`body ${JSON.stringify(e.rawError).slice(0, 400)}`);
  return parts.join(' ');
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]);
}

// Records every event from the start so that waits never race the event.
class Journal {
  constructor() {
    this.events = new Map();
    this.waiters = [];
  }
  add(kind, item) {
    if (!this.events.has(kind)) this.events.set(kind, []);
    this.events.get(kind).push(item);
    for (const w of [...this.waiters]) {
      if (w.kind === kind && w.pred(item)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(item);
      }
    }
  }
  all(kind) {
    return this.events.get(kind) || [];
  }
  wait(kind, pred = () => true, timeout = EVENT_TIMEOUT) {
    const found = this.all(kind).find(pred);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise(resolve => {
      const w = { kind, pred, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        resolve(null);
      }, timeout);
      this.waiters.push(w);
    });
  }
}

async function user2Post(content) {
  const url = `${BASE}/api/v10/channels/${CHANNEL_ID}/messages`;
  const res = await fetch(url, {
    method: 'POST',
    headers: { Authorization: USER2_TOKEN, 'Content-Type': 'application/json' },
    body: JSON.stringify({ content }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST /api/v10/channels/${CHANNEL_ID}/messages as user 2 -> HTTP ${res.status}: ${text.slice(0, 400)}`);
  return JSON.parse(text);
}

function idCmp(a, b) {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

async function scenario(client, journal) {
  // ---- login: GET /gateway/bot, then the gateway; resolves after IDENTIFY is sent
  const started = Date.now();
  const readyWait = journal.wait('ready', () => true, 30000);
  try {
    await withTimeout(client.login(TOKEN), 30000, 'client.login');
    report('login', true, `login() resolved; gateway ${client.ws.gateway}`);
  } catch (e) {
    report('login', false, errtext(e));
    reportMissing('not run: login failed');
    return;
  }

  // ---- ready
  const ready = await readyWait;
  const took = (Date.now() - started) / 1000;
  if (!ready) {
    report('ready', false, `ClientReady did not fire within 30 s (guilds cached: ${[...client.guilds.cache.keys()]}; ` +
      `dispatches received: ${journal.all('dispatch').slice(0, 20)}; closes: ${JSON.stringify(journal.all('close'))})`);
    reportMissing('not run: no ClientReady');
    return;
  }
  const guild = client.guilds.cache.get(GUILD_ID);
  const channel = guild && guild.channels.cache.get(CHANNEL_ID);
  if (!guild) {
    report('ready', false, `ClientReady after ${took}s but guild ${GUILD_ID} not cached (${[...client.guilds.cache.keys()]})`);
    reportMissing('not run: guild missing');
    return;
  }
  if (!channel || channel.type !== ChannelType.GuildText) {
    report('ready', false, `guild cached but channel ${CHANNEL_ID} is ${channel ? `type ${channel.type}` : 'missing'}; ` +
      `channels: ${guild.channels.cache.map(c => `${c.id}:${c.type}`).join(',')}`);
    reportMissing('not run: channel missing');
    return;
  }
  const slow = took > 14 ? ' (SLOW: looks like waitGuildTimeout, i.e. not every READY guild got a GUILD_CREATE)' : '';
  report('ready', true, `ClientReady after ${took}s${slow}; guild '${guild.name}' members cached=${guild.members.cache.size} ` +
    `memberCount=${guild.memberCount}; channel #${channel.name}`);
  const botId = client.user.id;

  // ---- message_create
  let msg = null;
  try {
    const content = `djs hello ${Date.now()}`;
    msg = await channel.send(content);
    const got = await journal.wait('message', m => m.id === msg.id);
    if (!got) {
      report('message_create', false, `sent ${msg.id} but messageCreate did not fire within ${EVENT_TIMEOUT} ms`);
    } else {
      const problems = [];
      if (got.content !== content) problems.push(`content ${JSON.stringify(got.content)} != ${JSON.stringify(content)}`);
      if (got.author.id !== botId) problems.push(`author ${got.author.id} != bot ${botId}`);
      if (got.guildId !== GUILD_ID) problems.push(`guildId ${got.guildId} (MESSAGE_CREATE lacks guild_id?)`);
      if (!got.member) problems.push('message.member missing (MESSAGE_CREATE lacks member?)');
      report('message_create', problems.length === 0, problems.join('; ') || `messageCreate for ${msg.id}`);
    }
  } catch (e) {
    report('message_create', false, errtext(e));
  }

  // ---- message_update
  if (msg) {
    try {
      const content = `${msg.content} (edited)`;
      const edited = await msg.edit(content);
      const got = await journal.wait('message_update', ([, n]) => n.id === msg.id);
      if (!got) {
        report('message_update', false, `edited ${msg.id} (REST ok, editedTimestamp=${edited.editedTimestamp}) but messageUpdate did not fire`);
      } else {
        const [, after] = got;
        const problems = [];
        if (after.content !== content) problems.push(`content ${JSON.stringify(after.content)} != ${JSON.stringify(content)}`);
        if (!edited.editedTimestamp) problems.push('PATCH response has edited_timestamp null');
        report('message_update', problems.length === 0, problems.join('; ') || 'messageUpdate ok');
      }
    } catch (e) {
      report('message_update', false, errtext(e));
    }
  } else {
    report('message_update', false, 'not run: no message');
  }

  // ---- reaction_add
  if (msg) {
    try {
      await msg.react('\u{1F44D}');
      const got = await journal.wait('reaction_add', ([r]) => r.message.id === msg.id);
      if (!got) {
        report('reaction_add', false, 'PUT reaction ok but messageReactionAdd did not fire');
      } else {
        const [reaction, user] = got;
        const problems = [];
        if (user.id !== botId) problems.push(`user ${user.id} != bot ${botId}`);
        if (reaction.emoji.name !== '\u{1F44D}') problems.push(`emoji ${reaction.emoji.name}`);
        report('reaction_add', problems.length === 0, problems.join('; ') || 'messageReactionAdd ok');
      }
    } catch (e) {
      report('reaction_add', false, errtext(e));
    }
  } else {
    report('reaction_add', false, 'not run: no message');
  }

  // ---- history
  if (msg) {
    try {
      const fetched = await channel.messages.fetch({ limit: 10, cache: false });
      const ids = [...fetched.keys()];
      const problems = [];
      if (!fetched.has(msg.id)) problems.push(`message ${msg.id} not in history ${ids}`);
      const sorted = [...ids].sort(idCmp).reverse();
      if (ids.join() !== sorted.join()) problems.push(`history not newest-first: ${ids}`);
      const m = fetched.get(msg.id);
      if (m && m.reactions.cache.size === 0) problems.push('fetched message has no reactions[] after the reaction was added');
      report('history', problems.length === 0, problems.join('; ') || `${ids.length} messages, newest first`);
    } catch (e) {
      report('history', false, errtext(e));
    }
  } else {
    report('history', false, 'not run: no message');
  }

  const want = [USER1_ID, USER2_ID, botId];

  // ---- members_chunk (gateway op 8 via guild.members.fetch())
  try {
    const members = await guild.members.fetch({ time: EVENT_TIMEOUT });
    const missing = want.filter(id => !members.has(id));
    report('members_chunk', missing.length === 0,
      missing.length ? `missing ${missing} from ${[...members.keys()]}` : `${members.size} members via op 8`);
  } catch (e) {
    report('members_chunk', false, errtext(e));
  }

  // ---- members_fetch (REST GET /guilds/{id}/members)
  try {
    const members = await guild.members.list({ limit: 1000, cache: false });
    const missing = want.filter(id => !members.has(id));
    report('members_fetch', missing.length === 0,
      missing.length ? `missing ${missing} from ${[...members.keys()]}` : `${members.size} members via REST`);
  } catch (e) {
    report('members_fetch', false, errtext(e));
  }

  // ---- user2_message
  try {
    const content = `hello from user 2 at ${Date.now()}`;
    const posted = await user2Post(content);
    const got = await journal.wait('message', m => m.id === posted.id);
    if (!got) {
      report('user2_message', false, `user 2 posted ${posted.id} but messageCreate did not fire`);
    } else {
      const problems = [];
      if (got.author.id !== USER2_ID) problems.push(`author ${got.author.id} != user 2 ${USER2_ID}`);
      if (got.content !== content) problems.push(`content ${JSON.stringify(got.content)} != ${JSON.stringify(content)} (message_content intent?)`);
      if (got.author.bot) problems.push('author.bot is true');
      report('user2_message', problems.length === 0, problems.join('; ') || 'seen with author and content');
    }
  } catch (e) {
    report('user2_message', false, errtext(e));
  }

  // ---- message_delete
  if (msg) {
    try {
      await msg.delete();
      const got = await journal.wait('message_delete', m => m.id === msg.id);
      report('message_delete', !!got, got ? 'messageDelete ok' : 'DELETE ok but messageDelete did not fire');
    } catch (e) {
      report('message_delete', false, errtext(e));
    }
  } else {
    report('message_delete', false, 'not run: no message');
  }

  // ---- resume: destroy the @discordjs/ws shard with a resumable close;
  // it reconnects to resume_gateway_url and sends RESUME; RESUMED -> shardResume.
  try {
    const strategy = client.ws._ws && client.ws._ws.strategy;
    const shard = strategy && strategy.shards && strategy.shards.get(0);
    if (!shard) throw new Error('cannot reach the @discordjs/ws shard (client.ws._ws.strategy.shards.get(0))');
    const nReady = journal.all('ready').length;
    const nResumed = journal.all('resumed').length;
    const nIdentify = journal.all('debug_identify').length;
    const nRecon = journal.all('reconnecting').length;
    const closed = journal.wait('reconnecting', () => journal.all('reconnecting').length > nRecon, 5000);
    log('forcing disconnect: shard.destroy({ code: 4000, recover: Resume })');
    const destroying = shard
      .destroy({ code: 4000, reason: 'compat: forced resume', recover: WebSocketShardDestroyRecovery.Resume })
      .catch(e => log('shard.destroy failed:', errtext(e)));
    await closed;
    let replayPost = null;
    const replayContent = `while disconnected ${Date.now()}`;
    try {
      replayPost = await user2Post(replayContent);
    } catch (e) {
      report('resume_replay', false, errtext(e));
    }
    let got = null;
    for (const deadline = Date.now() + 15000; Date.now() < deadline; await sleep(50)) {
      if (journal.all('resumed').length > nResumed) break;
      if (journal.all('ready').length > nReady || journal.all('debug_identify').length > nIdentify) {
        await sleep(1000); // a late RESUMED would still count
        break;
      }
    }
    if (journal.all('resumed').length > nResumed) got = journal.all('resumed')[nResumed];
    if (got) {
      const [, replayed] = got;
      report('resume', true, `shardResume fired (replayed ${replayed} events)`);
    } else {
      const reidentified = journal.all('debug_identify').length > nIdentify;
      report('resume', false, 'shardResume did not fire' +
        (reidentified ? '; the shard re-IDENTIFIED instead (RESUME rejected / INVALID_SESSION)' : '') +
        (journal.all('ready').length > nReady ? '; ClientReady fired again' : '') +
        `; gateway log: ${JSON.stringify(journal.all('close').slice(-4))}`);
    }
    await withTimeout(destroying, 5000, 'shard.destroy').catch(() => {});
    if (replayPost) {
      const seen = await journal.wait('message', m => m.id === replayPost.id);
      await sleep(1000);
      const count = journal.all('message').filter(m => m.id === replayPost.id).length;
      if (!seen) report('resume_replay', false, `message ${replayPost.id} posted during the disconnect never reached messageCreate`);
      else report('resume_replay', count === 1, count === 1 ? 'received once' : `received ${count} times (duplicate replay)`);
    }
  } catch (e) {
    report('resume', false, errtext(e));
  }

  // ---- after_resume
  try {
    const m2 = await withTimeout(channel.send(`djs after resume ${Date.now()}`), EVENT_TIMEOUT, 'channel.send');
    const got = await journal.wait('message', m => m.id === m2.id);
    report('after_resume', !!got, got ? 'messageCreate after reconnect' : `sent ${m2.id} but messageCreate did not fire`);
  } catch (e) {
    report('after_resume', false, errtext(e));
  }
}

async function main() {
  if (!TOKEN || !GUILD_ID || !CHANNEL_ID) {
    console.error('djs_bot.js: GH_BOT_TOKEN, GH_GUILD_ID, GH_CHANNEL_ID are required (run it through compat/run.py)');
    process.exit(2);
  }
  log(`discord.js ${version}; REST ${BASE}/api/v10`);

  const hard = setTimeout(() => {
    reportMissing(`not run: hard timeout (${TIMEOUT / 1000 + 15}s), process exited itself`);
    process.exit(3);
  }, TIMEOUT + 15000);

  const journal = new Journal();
  const client = new Client({
    intents: [
      GatewayIntentBits.Guilds,
      GatewayIntentBits.GuildMessages,
      GatewayIntentBits.MessageContent,
      GatewayIntentBits.GuildMembers,
      GatewayIntentBits.GuildMessageReactions,
    ],
    partials: [Partials.Message, Partials.Channel, Partials.Reaction, Partials.User, Partials.GuildMember],
    rest: { api: `${BASE}/api`, cdn: `${BASE}/cdn`, timeout: 10000, retries: 1 },
  });
  client.on(Events.Raw, p => journal.add('dispatch', p.t));
  client.on(Events.ClientReady, () => journal.add('ready', Date.now()));
  client.on(Events.MessageCreate, m => journal.add('message', m));
  client.on(Events.MessageUpdate, (o, n) => journal.add('message_update', [o, n]));
  client.on(Events.MessageReactionAdd, (r, u) => journal.add('reaction_add', [r, u]));
  client.on(Events.MessageDelete, m => journal.add('message_delete', m));
  client.on(Events.ShardResume, (id, replayed) => journal.add('resumed', [id, replayed]));
  client.on(Events.ShardReconnecting, id => journal.add('reconnecting', id));
  client.on(Events.ShardDisconnect, (ev, id) => {
    journal.add('disconnect', ev);
    journal.add('close', `shardDisconnect code ${ev.code}`);
    log('shardDisconnect (will not reconnect)', id, JSON.stringify(ev));
  });
  client.on(Events.ShardError, (e, id) => log('shardError', id, errtext(e)));
  client.on(Events.Error, e => log('client error', errtext(e)));
  client.on(Events.Warn, w => log('warn', w));
  client.on(Events.Debug, m => {
    if (/Identifying/i.test(m) || /"op":2\b/.test(m)) journal.add('debug_identify', m);
    if (/close code|closed|invalid session/i.test(m)) journal.add('close', m.replace(/\s+/g, ' ').slice(0, 160));
    if (DEBUG) log('debug', m);
  });
  client.rest.on('response', (req, res) => {
    if (DEBUG || res.status >= 400) log('rest', req.method, req.path, '->', res.status);
  });

  const scenarioTimer = sleep(TIMEOUT).then(() => 'timeout');
  let outcome;
  try {
    outcome = await Promise.race([scenario(client, journal).then(() => 'done'), scenarioTimer]);
  } catch (e) {
    log('scenario crashed', e && e.stack);
    reportMissing(`not run: scenario crashed: ${errtext(e)}`);
  }
  if (outcome === 'timeout') reportMissing(`not run: overall timeout of ${TIMEOUT / 1000}s reached`);
  reportMissing('not run');
  try {
    await withTimeout(client.destroy(), 5000, 'client.destroy');
  } catch (e) {
    log('client.destroy failed', errtext(e));
  }
  clearTimeout(hard);
  process.exit(0);
}

process.on('unhandledRejection', e => log('unhandledRejection', e && e.stack ? e.stack : e));
main();
