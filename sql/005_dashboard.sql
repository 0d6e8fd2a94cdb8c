-- 005_dashboard: what the dashboard reads and writes besides its settings:
-- request summaries per 5 minutes and per hour kept by triggers on the
-- rollups, the cache generation, the configuration audit and the bounded
-- activity feed.

-- Per 5-minute and per hour totals of omni_metrics.request_rollup, kept
-- equal to it by the triggers below: the dashboard's stats and charts read
-- a number of rows set by the time span alone, whatever the traffic and
-- the number of routes and statuses.
CREATE TABLE omni_metrics.request_summary (
    width         int         NOT NULL CHECK (width IN (300, 3600)),
    start         timestamptz NOT NULL,
    count         bigint      NOT NULL,
    errors        bigint      NOT NULL,
    client_errors bigint      NOT NULL,
    sum_us        bigint      NOT NULL,
    max_us        bigint      NOT NULL,
    hist          bigint[]    NOT NULL,
    PRIMARY KEY (width, start),
    CONSTRAINT request_summary_hist_120
        CHECK (array_ndims(hist) = 1 AND array_length(hist, 1) = 120)
);

COMMENT ON TABLE omni_metrics.request_summary IS
    'omni_metrics.request_rollup summed over all routes per 5 minutes '
    '(width 300) and per hour (width 3600), aligned to UTC. Written only by '
    'the request_rollup_summary_* triggers: every insert, update, delete or '
    'truncate of request_rollup is applied here in the same transaction.';
COMMENT ON COLUMN omni_metrics.request_summary.errors IS
    'Requests answered with a status >= 500.';
COMMENT ON COLUMN omni_metrics.request_summary.client_errors IS
    'Requests answered with a status from 400 to 499.';
COMMENT ON COLUMN omni_metrics.request_summary.max_us IS
    'Largest latency added to the bucket; deleting some of its rollup rows '
    'does not lower it.';
COMMENT ON COLUMN omni_metrics.request_summary.hist IS
    'Latency histogram, as omni_metrics.request_rollup.hist.';


-- One row: bumped with every change to the data cached answers come from,
-- so a cached answer is used only while its generation is current.
CREATE TABLE omni2_dashboard.cache_state (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    generation bigint  NOT NULL
);

INSERT INTO omni2_dashboard.cache_state (generation) VALUES (1);

COMMENT ON TABLE omni2_dashboard.cache_state IS
    'The current cache generation (one row). Request rollup changes and '
    'configuration changes bump it in their own transaction; '
    'dashboard_cache rows of an older generation are not served.';

ALTER TABLE omni2_dashboard.dashboard_cache
    ADD COLUMN generation bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN omni2_dashboard.dashboard_cache.generation IS
    'cache_state.generation the value was computed at, in the same snapshot '
    'as its data.';


-- No flush may slip between the triggers' creation and the backfill below.
LOCK TABLE omni_metrics.request_rollup IN SHARE ROW EXCLUSIVE MODE;

-- The trigger function has a 120-term sum per statement (per-element sums
-- are 15 times faster than folding hist_add over the rows), generated here
-- rather than written out; the same statement backfills the summaries from
-- the rollups already there.
DO $do$
DECLARE
    sums text;
    merge text;
BEGIN
    SELECT string_agg(format('sum(d.hist[%s] * d.sign)', i), ', '
                      ORDER BY i)
    INTO sums FROM generate_series(1, 120) AS i;

    merge := format($m$
        INSERT INTO omni_metrics.request_summary AS s
            (width, start, count, errors, client_errors, sum_us, max_us,
             hist)
        SELECT w.width,
               to_timestamp(floor(extract(epoch FROM d.minute) / w.width)
                            * w.width),
               sum(d.count * d.sign),
               coalesce(sum(d.count * d.sign) FILTER (WHERE d.status >= 500),
                        0),
               coalesce(sum(d.count * d.sign)
                        FILTER (WHERE d.status BETWEEN 400 AND 499), 0),
               sum(d.sum_us * d.sign),
               coalesce(max(d.max_us) FILTER (WHERE d.sign > 0), 0),
               ARRAY[%s]::bigint[]
        FROM (%%s) AS d, (VALUES (300), (3600)) AS w(width)
        GROUP BY 1, 2
        ORDER BY 1, 2
        ON CONFLICT (width, start) DO UPDATE SET
            count = s.count + excluded.count,
            errors = s.errors + excluded.errors,
            client_errors = s.client_errors + excluded.client_errors,
            sum_us = s.sum_us + excluded.sum_us,
            max_us = greatest(s.max_us, excluded.max_us),
            hist = omni_metrics.hist_add(s.hist, excluded.hist)
    $m$, sums);

    EXECUTE format($f$
        CREATE FUNCTION omni_metrics.request_summary_apply() RETURNS trigger
            LANGUAGE plpgsql
        AS $body$
        BEGIN
            -- first: writers queue here before touching any summary row,
            -- so two of them never wait for each other's rows
            UPDATE omni2_dashboard.cache_state
            SET generation = generation + 1;
            IF TG_OP = 'INSERT' THEN
                %s;
            ELSIF TG_OP = 'UPDATE' THEN
                %s;
            ELSIF TG_OP = 'DELETE' THEN
                %s;
                -- buckets the rollups no longer hold (retention)
                DELETE FROM omni_metrics.request_summary WHERE count = 0;
            ELSE
                DELETE FROM omni_metrics.request_summary;
            END IF;
            RETURN NULL;
        END
        $body$
    $f$,
    format(merge, 'SELECT *, 1 AS sign FROM new_rows'),
    format(merge, 'SELECT *, 1 AS sign FROM new_rows'
                  ' UNION ALL SELECT *, -1 FROM old_rows'),
    format(merge, 'SELECT *, -1 AS sign FROM old_rows'));

    EXECUTE format(merge, 'SELECT *, 1 AS sign'
                          ' FROM omni_metrics.request_rollup');
END
$do$;

COMMENT ON FUNCTION omni_metrics.request_summary_apply() IS
    'Statement trigger on omni_metrics.request_rollup: bumps '
    'omni2_dashboard.cache_state.generation (which also serializes '
    'concurrent writers), then applies the statement''s rows (new minus '
    'old) to request_summary in one upsert; buckets left empty by a delete '
    'go, so omni_metrics.prune_rollups prunes the summaries as well.';

CREATE TRIGGER request_rollup_summary_insert
    AFTER INSERT ON omni_metrics.request_rollup
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION omni_metrics.request_summary_apply();
CREATE TRIGGER request_rollup_summary_update
    AFTER UPDATE ON omni_metrics.request_rollup
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION omni_metrics.request_summary_apply();
CREATE TRIGGER request_rollup_summary_delete
    AFTER DELETE ON omni_metrics.request_rollup
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION omni_metrics.request_summary_apply();
CREATE TRIGGER request_rollup_summary_truncate
    AFTER TRUNCATE ON omni_metrics.request_rollup
    FOR EACH STATEMENT EXECUTE FUNCTION omni_metrics.request_summary_apply();


-- Every change of a configuration value, kept (the activity feed is
-- pruned; this is not).
CREATE TABLE omni2_dashboard.config_audit (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key        text        NOT NULL,
    old_value  jsonb,
    new_value  jsonb       NOT NULL,
    changed_by text,
    changed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX config_audit_key_changed_at_idx
    ON omni2_dashboard.config_audit (key, changed_at);

COMMENT ON TABLE omni2_dashboard.config_audit IS
    'One row per change of a dashboard_config value: old (NULL for a new '
    'key) and new value, who (X-User-Id) and when. Written by put_config.';


CREATE FUNCTION omni2_dashboard.put_config(p_key text, p_value jsonb,
    p_by text)
    RETURNS TABLE (key text, value jsonb, description text,
                   updated_at timestamptz, updated_by text,
                   old_value jsonb, changed boolean)
    LANGUAGE plpgsql
AS $$
DECLARE
    c omni2_dashboard.dashboard_config;
    old jsonb;
BEGIN
    INSERT INTO omni2_dashboard.dashboard_config AS d (key, value, updated_by)
    VALUES (p_key, p_value, p_by)
    ON CONFLICT ON CONSTRAINT dashboard_config_pkey DO NOTHING
    RETURNING d.* INTO c;
    IF NOT FOUND THEN
        SELECT d.value INTO old FROM omni2_dashboard.dashboard_config AS d
        WHERE d.key = p_key FOR UPDATE;
        UPDATE omni2_dashboard.dashboard_config AS d
        SET value = p_value, updated_at = now(), updated_by = p_by
        WHERE d.key = p_key
        RETURNING d.* INTO c;
    END IF;
    changed := old IS DISTINCT FROM p_value;
    IF changed THEN
        INSERT INTO omni2_dashboard.config_audit
            (key, old_value, new_value, changed_by, changed_at)
        VALUES (p_key, old, p_value, p_by, c.updated_at);
        UPDATE omni2_dashboard.cache_state SET generation = generation + 1;
    END IF;
    key := c.key;
    value := c.value;
    description := c.description;
    updated_at := c.updated_at;
    updated_by := c.updated_by;
    old_value := old;
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION omni2_dashboard.put_config(text, jsonb, text) IS
    'Sets a configuration value (PUT /api/v1/config/{key}); when it differs '
    'from the old one, records the change in config_audit and bumps the '
    'cache generation, all in the caller''s transaction. Returns the row, '
    'the old value and whether it changed. Concurrent calls for one key are '
    'serialized by its row lock, so each sees the value the previous one '
    'wrote.';


-- The activity feed: recent events, newest first, at most
-- live_updates.max_stored_events of them.
CREATE TABLE omni2_dashboard.activity (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    type       text        NOT NULL,
    actor      text,
    summary    text        NOT NULL,
    detail     jsonb       NOT NULL DEFAULT '{}',
    CONSTRAINT activity_type_format
        CHECK (type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'
               AND length(type) <= 64),
    CONSTRAINT activity_summary_length
        CHECK (length(summary) BETWEEN 1 AND 500),
    CONSTRAINT activity_detail_object CHECK (jsonb_typeof(detail) = 'object')
);

COMMENT ON TABLE omni2_dashboard.activity IS
    'Recent platform events for GET /api/v1/dashboard/activity, appended '
    'through omni2_dashboard.record_activity (omni_activity_record() in the '
    'worker), which prunes the oldest beyond live_updates.max_stored_events.';
COMMENT ON COLUMN omni2_dashboard.activity.type IS
    'Dotted lower-case event name: config.updated, mcp.server.down, ...';
COMMENT ON COLUMN omni2_dashboard.activity.actor IS
    'User id that caused the event; NULL for the platform itself.';


CREATE FUNCTION omni2_dashboard.record_activity(p_type text, p_actor text,
    p_summary text, p_detail jsonb)
    RETURNS bigint
    LANGUAGE plpgsql
AS $$
DECLARE
    new_id bigint;
    keep   int;
BEGIN
    INSERT INTO omni2_dashboard.activity (type, actor, summary, detail)
    VALUES (p_type, p_actor, p_summary, coalesce(p_detail, '{}'))
    RETURNING id INTO new_id;

    SELECT (c.value->>'max_stored_events')::int INTO keep
    FROM omni2_dashboard.dashboard_config AS c
    WHERE c.key = 'live_updates';

    DELETE FROM omni2_dashboard.activity
    WHERE id <= (SELECT a.id FROM omni2_dashboard.activity AS a
                 ORDER BY a.id DESC OFFSET greatest(coalesce(keep, 1000), 1)
                 LIMIT 1);
    RETURN new_id;
END
$$;

COMMENT ON FUNCTION omni2_dashboard.record_activity(text, text, text, jsonb)
    IS 'Appends an event to the activity feed and deletes the oldest beyond '
       'live_updates.max_stored_events (1000 when unset). Returns its id.';
