/**
 * Fan-out of `syncChanges` events to the local `changes` subscribers: ONE pub/sub subscription
 * per database while it has at least one local listener, instead of one per subscriber. This keeps
 * an idle subscriber down to a closure in a Set (memory), dispatches one event to N listeners in
 * one loop (latency), and stays clear of EventTarget's max-listener warning.
 */
import type { ApiPubSub, SyncChangesPayload } from '../../../pubsub.ts';

export type ChangeListener = (event: SyncChangesPayload) => void;

interface Topic {
  listeners: Set<ChangeListener>;
  stop(): void;
}

export class ChangeHub {
  readonly #pubsub: ApiPubSub;
  readonly #topics = new Map<string, Topic>();
  readonly #onError: (error: unknown) => void;

  constructor(pubsub: ApiPubSub, onError: (error: unknown) => void = (e) => console.error('sync: changes hub failed', e)) {
    this.#pubsub = pubsub;
    this.#onError = onError;
  }

  /**
   * Registers `listener` for `databaseId`. Synchronous: every event published after this call
   * returns reaches the listener (the pub/sub subscription is attached before it returns).
   * Returns the function that removes the listener.
   */
  listen(databaseId: string, listener: ChangeListener): () => void {
    let topic = this.#topics.get(databaseId);
    if (topic === undefined) topic = this.#open(databaseId);
    topic.listeners.add(listener);
    const t = topic;
    return () => {
      t.listeners.delete(listener);
      if (t.listeners.size === 0 && this.#topics.get(databaseId) === t) {
        this.#topics.delete(databaseId);
        t.stop();
      }
    };
  }

  /** Databases with live listeners and their listener counts. */
  stats(): Map<string, number> {
    return new Map([...this.#topics].map(([id, t]) => [id, t.listeners.size]));
  }

  #open(databaseId: string): Topic {
    const iterator = this.#pubsub.subscribe('syncChanges', databaseId)[Symbol.asyncIterator]();
    const listeners = new Set<ChangeListener>();
    const topic: Topic = { listeners, stop: () => void iterator.return?.() };
    this.#topics.set(databaseId, topic);
    // The first next() runs the pub/sub repeater's executor synchronously: the listener is attached now.
    const pump = async (): Promise<void> => {
      for (;;) {
        const r = await iterator.next();
        if (r.done === true) return;
        for (const l of listeners) {
          try {
            l(r.value);
          } catch (e) {
            this.#onError(e);
          }
        }
      }
    };
    pump().catch((e: unknown) => {
      this.#onError(e);
      if (this.#topics.get(databaseId) === topic) this.#topics.delete(databaseId);
    });
    return topic;
  }
}

const hubs = new WeakMap<ApiPubSub, ChangeHub>();

/** The hub of a pub/sub instance (one per server). */
export function changeHubOf(pubsub: ApiPubSub): ChangeHub {
  let hub = hubs.get(pubsub);
  if (hub === undefined) {
    hub = new ChangeHub(pubsub);
    hubs.set(pubsub, hub);
  }
  return hub;
}
