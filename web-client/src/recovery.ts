// Keeping the seat through a network outage (issue 13): when the page's connection to
// the server goes `disconnected` (for longer than a short grace) or `failed`, the same
// RTCPeerConnection restarts ICE (`restartIce()`, a new offer over the signaling
// socket) instead of a new join. Every retry is bounded in count and spacing; after
// the last one the session gives up and falls back to a full reconnect (a new
// connection, as before).
//
// Shaped as a small state machine with its actions injected (`restart`, `giveUp`) and
// its own timers, so the session keeps only the wiring and the unit tests can drive it
// with a fake clock.

export interface RecoveryPolicy {
  /** How long `disconnected` may last before an ICE restart (ICE often recovers by itself). */
  graceMs: number;
  /** Time between two restarts of one outage while the connection stays down. */
  retryMs: number;
  /** Restarts per outage before giving up. */
  maxRestarts: number;
}

// Eight restarts 4 s apart cover about 34 s: past Chromium's own `failed` (~30 s)
// and the server's patience (30 s after its ICE failed).
export const DEFAULT_RECOVERY: RecoveryPolicy = { graceMs: 2000, retryMs: 4000, maxRestarts: 8 };

export interface RecoveryActions {
  /** Restart ICE now (the `attempt`-th time in this outage, from 1). */
  restart(attempt: number): void;
  /** Stop trying: the connection did not come back. */
  giveUp(): void;
  /** The connection came back (after `restarts` restarts, `ms` after the outage began). */
  recovered?(restarts: number, ms: number): void;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export class IceRecovery {
  /** When the current outage began (null: connected, or never connected). */
  private outageSince: number | null = null;
  private restarts = 0;
  private timer: unknown = null;
  private done = false;
  /** ICE restarts done over this connection's life (test hook). */
  totalRestarts = 0;

  constructor(
    private actions: RecoveryActions,
    private policy: RecoveryPolicy = DEFAULT_RECOVERY,
    private clock: Clock = realClock,
  ) {}

  /** Feeds the connection's `connectionState`. */
  onState(state: RTCPeerConnectionState): void {
    if (this.done) return;
    switch (state) {
      case 'connected':
        if (this.outageSince !== null) this.actions.recovered?.(this.restarts, this.clock.now() - this.outageSince);
        this.outageSince = null;
        this.restarts = 0;
        this.clearTimer();
        break;
      case 'disconnected':
        if (this.outageSince === null) {
          this.outageSince = this.clock.now();
          this.schedule(this.policy.graceMs);
        }
        break;
      case 'failed':
        this.outageSince ??= this.clock.now();
        // No point waiting: ICE gave up on every pair.
        this.clearTimer();
        this.attempt();
        break;
      default:
        break;
    }
  }

  /** Stops every timer for good (the connection is being closed). */
  stop(): void {
    this.done = true;
    this.clearTimer();
  }

  /** Whether an outage is being recovered from now. */
  get recovering(): boolean {
    return this.outageSince !== null && !this.done;
  }

  private attempt(): void {
    if (this.done) return;
    if (this.restarts >= this.policy.maxRestarts) {
      this.stop();
      this.actions.giveUp();
      return;
    }
    this.restarts++;
    this.totalRestarts++;
    this.actions.restart(this.restarts);
    this.schedule(this.policy.retryMs);
  }

  private schedule(ms: number): void {
    this.clearTimer();
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      if (this.outageSince !== null) this.attempt();
    }, ms);
  }

  private clearTimer(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }
}
