-- The archive: one row per ended run, one per event of its log.
CREATE TABLE flowqueue_runs (
    run_id      text COLLATE "C" PRIMARY KEY, -- bytewise, as Redis orders the index
    flow        text NOT NULL,
    status      text NOT NULL,
    started_ms  bigint NOT NULL,
    ended_ms    bigint,
    events      integer NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now()
);
-- A flow's runs newest first: the order of the run indexes in Redis.
CREATE INDEX flowqueue_runs_by_flow ON flowqueue_runs (flow, started_ms DESC, run_id DESC);

CREATE TABLE flowqueue_events (
    run_id text COLLATE "C" NOT NULL REFERENCES flowqueue_runs (run_id) ON DELETE CASCADE,
    -- the event's stream id: both halves are unsigned 64-bit in Redis
    ms     numeric(20, 0) NOT NULL,
    seq    numeric(20, 0) NOT NULL,
    -- the record as the run's log held it (its "e" field, whole: run id and flow in it),
    -- bytes for bytes; reads decode it as a read from Redis does (NULL: it had none).
    -- As JSON: convert_from(body, 'UTF8')::json
    body   bytea,
    PRIMARY KEY (run_id, ms, seq)
);
