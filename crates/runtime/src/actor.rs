//! The actor machinery shared by guild actors and the private-channel actor: a task
//! that owns its state, runs one job at a time, applies each job's writes to the
//! store, and publishes the job's events (and answers its caller) only once those
//! writes are durable — in the order the jobs ran.
//!
//! Run loop, per actor task:
//! 1. Wait for either a job from the mailbox or the oldest in-flight write to
//!    become durable.
//! 2. A job runs against `&mut Actor<S>`; it reads and changes the state and
//!    returns a [`Change`]: store mutations, events, and a value for the caller.
//! 3. The mutations go to [`Store::apply`] at once (visible immediately); the
//!    `Durable` future, the events and the reply wait in a FIFO.
//! 4. When the head of the FIFO is durable, the caller gets its value and then its
//!    events are fanned out (before the next job runs). Writes of many jobs share
//!    one fsync; order is kept.
//!
//! Invariant: no event is published and no caller is answered before the write it
//! describes is durable. A caller may see its answer slightly before the events
//! reach sessions, but any job it sends afterwards publishes after them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::{FuturesOrdered, StreamExt};
use guildhall_store::{Durable, Mutation, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::Shared;
use crate::error::{Error, Result};
use crate::event::Event;

/// What a job did: writes to persist, events to publish after them, and the value
/// returned to the caller.
pub struct Change<R> {
    pub mutations: Vec<Mutation>,
    pub events: Vec<Event>,
    pub value: R,
}

impl<R> Change<R> {
    /// A job that only read.
    pub fn read(value: R) -> Change<R> {
        Change { mutations: Vec::new(), events: Vec::new(), value }
    }
    pub fn write(mutations: Vec<Mutation>, events: Vec<Event>, value: R) -> Change<R> {
        Change { mutations, events, value }
    }
}

/// How an actor's state fans an event out to sessions.
pub trait Scope: Send + 'static {
    fn publish(&mut self, shared: &Shared, event: &Event);
    /// Whether publishing one event takes long enough (many recipients) that the
    /// actor should let the answered caller run before it fans out.
    fn fanout_is_large(&self) -> bool {
        false
    }
}

pub type Job<S> = Box<dyn FnOnce(&mut Actor<S>) + Send>;

type Reply = Box<dyn FnOnce(Result<()>) + Send>;

struct InFlight {
    result: Result<(), StoreError>,
    events: Vec<Event>,
    reply: Reply,
}

pub struct Actor<S: Scope> {
    pub state: S,
    pub shared: Arc<Shared>,
    /// Writes waiting for their fsync, in job order.
    inflight: FuturesOrdered<Pin<Box<dyn Future<Output = InFlight> + Send>>>,
}

impl<S: Scope> Actor<S> {
    /// Queues a change: applies its writes now, publishes and replies once durable.
    fn submit(&mut self, mutations: Vec<Mutation>, events: Vec<Event>, reply: Reply) {
        if mutations.is_empty() && self.inflight.is_empty() {
            reply(Ok(()));
            for e in &events {
                self.state.publish(&self.shared, e);
            }
            return;
        }
        let durable = if mutations.is_empty() { Durable::ready(Ok(())) } else { self.shared.store.apply(mutations) };
        self.inflight.push_back(Box::pin(async move { InFlight { result: durable.await, events, reply } }));
    }

    async fn complete(&mut self, done: InFlight) {
        match done.result {
            Ok(()) => {
                // The caller is answered first: the write is durable, and the fan-out
                // below runs before the actor takes its next job, so no later job's
                // events can overtake these. The caller's task runs while the actor
                // fans out, instead of waiting for it.
                (done.reply)(Ok(()));
                if !done.events.is_empty() && self.state.fanout_is_large() {
                    // The woken caller sits in this worker's queue until the actor's
                    // poll ends; a large fan-out would hold it there for its whole
                    // length (and each recipient woken goes ahead of it).
                    tokio::task::yield_now().await;
                }
                for e in &done.events {
                    self.state.publish(&self.shared, e);
                }
            }
            Err(e) => (done.reply)(Err(e.into())),
        }
    }

    /// Publishes an event that describes no write of its own (typing, presence).
    /// It still waits behind earlier writes, so order is kept.
    pub fn publish_now(&mut self, event: Event) {
        self.submit(Vec::new(), vec![event], Box::new(|_| {}));
    }

    /// The actor task's loop; ends when every handle is dropped and the queue drains.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Job<S>>) {
        loop {
            tokio::select! {
                biased;
                Some(done) = self.inflight.next(), if !self.inflight.is_empty() => self.complete(done).await,
                job = rx.recv() => match job {
                    Some(job) => job(&mut self),
                    None => break,
                },
            }
        }
        while let Some(done) = self.inflight.next().await {
            self.complete(done).await;
        }
    }
}

/// Sends jobs to an actor. Cheap to clone.
pub struct Handle<S: Scope> {
    /// The actor's mailbox, bounded: callers wait when it is full, which slows REST
    /// handlers down instead of growing memory.
    tx: mpsc::Sender<Job<S>>,
}

impl<S: Scope> Clone for Handle<S> {
    fn clone(&self) -> Self {
        Handle { tx: self.tx.clone() }
    }
}

/// Mailbox capacity of each actor.
const MAILBOX: usize = 4096;

impl<S: Scope> Handle<S> {
    /// Spawns the actor task.
    pub fn spawn(state: S, shared: Arc<Shared>) -> Handle<S> {
        let (tx, rx) = mpsc::channel(MAILBOX);
        let guard = shared.actor_guard();
        let actor = Actor { state, shared, inflight: FuturesOrdered::new() };
        tokio::spawn(async move {
            actor.run(rx).await;
            drop(guard);
        });
        Handle { tx }
    }

    /// Runs `f` on the actor and waits for its value (after its writes are durable).
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Actor<S>) -> Result<Change<R>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<R>>();
        let job: Job<S> = Box::new(move |actor: &mut Actor<S>| match f(actor) {
            Ok(change) => {
                let value = change.value;
                actor.submit(
                    change.mutations,
                    change.events,
                    Box::new(move |r: Result<()>| {
                        let _ = tx.send(r.map(|()| value));
                    }),
                );
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        });
        self.tx.send(job).await.map_err(|_| Error::internal())?;
        rx.await.map_err(|_| Error::internal())?
    }

    /// Sends a job without waiting for it (fan-out of presence, subscriptions).
    pub fn cast(&self, f: impl FnOnce(&mut Actor<S>) + Send + 'static) -> bool {
        self.tx.try_send(Box::new(f)).is_ok()
    }

    /// Like [`Handle::cast`] but waits for mailbox room instead of failing.
    pub async fn cast_wait(&self, f: impl FnOnce(&mut Actor<S>) + Send + 'static) -> bool {
        self.tx.send(Box::new(f)).await.is_ok()
    }
}
