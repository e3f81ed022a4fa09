/** An event after validation, ready to store. `data` is kept as its canonical JSON text. */
export interface NewEvent {
  source: string;
  id: string;
  type: string | null;
  subject: string | null;
  time: number;
  /** True when the client sent `time`; a defaulted time is not part of the event's identity. */
  timeExplicit: boolean;
  data: unknown;
  dataJson: string | null;
  /** Content hash deciding duplicate (same) versus conflict (different) on a reused key. */
  hash: string;
}

export interface StoredEvent {
  seq: number;
  source: string;
  id: string;
  type: string | null;
  subject: string | null;
  time: number;
  data: unknown;
  ingestedAt: number;
}

export type AppendStatus = 'accepted' | 'duplicate' | 'conflict';

export interface EventFilter {
  subject?: string;
  type?: string;
  from?: number;
  to?: number;
}

export interface EventCursor {
  time: number;
  seq: number;
}
