-- 013_usage_rollup: the LLM ledger (omnichat.llm_usage) summed per 5
-- minutes and per hour, for everyone and per user, kept by statement
-- triggers on the ledger: the dashboard's cost and tokens read a number of
-- rows set by the time span alone, never the ledger's rows, and the
-- ledger's batched appends stay one statement each (no per-request
-- counter updates).

CREATE TABLE omnichat.usage_rollup (
    width         int         NOT NULL CHECK (width IN (300, 3600)),
    user_id       text        NOT NULL,
    start         timestamptz NOT NULL,
    requests      bigint      NOT NULL,
    input_tokens  bigint      NOT NULL,
    output_tokens bigint      NOT NULL,
    cached_tokens bigint      NOT NULL,
    cost          numeric     NOT NULL,
    PRIMARY KEY (width, user_id, start)
);

COMMENT ON TABLE omnichat.usage_rollup IS
    'omnichat.llm_usage summed per 5 minutes (width 300) and per hour '
    '(width 3600), aligned to UTC: user_id '''' holds every row, the other '
    'user_ids their own rows (a row without a user counts only in ''''). '
    'Written only by the llm_usage_rollup_* triggers, in the transaction of '
    'the ledger change; buckets left empty by a delete go.';
COMMENT ON COLUMN omnichat.usage_rollup.requests IS
    'Ledger rows (provider attempts) in the bucket.';


-- No append may slip between the triggers' creation and the backfill.
LOCK TABLE omnichat.llm_usage IN SHARE ROW EXCLUSIVE MODE;

DO $do$
DECLARE
    merge text;
BEGIN
    merge := $m$
        INSERT INTO omnichat.usage_rollup AS s
            (width, user_id, start, requests, input_tokens, output_tokens,
             cached_tokens, cost)
        SELECT w.width, u.scope,
               to_timestamp(floor(extract(epoch FROM d.at) / w.width)
                            * w.width),
               sum(d.sign), sum(d.input_tokens * d.sign),
               sum(d.output_tokens * d.sign), sum(d.cached_tokens * d.sign),
               sum(d.cost * d.sign)
        FROM (%s) AS d
        CROSS JOIN (VALUES (300), (3600)) AS w(width)
        CROSS JOIN LATERAL (VALUES (''), (d.user_id)) AS u(scope)
        WHERE u.scope IS NOT NULL
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (width, user_id, start) DO UPDATE SET
            requests = s.requests + excluded.requests,
            input_tokens = s.input_tokens + excluded.input_tokens,
            output_tokens = s.output_tokens + excluded.output_tokens,
            cached_tokens = s.cached_tokens + excluded.cached_tokens,
            cost = s.cost + excluded.cost
    $m$;

    EXECUTE format($f$
        CREATE FUNCTION omnichat.usage_rollup_apply() RETURNS trigger
            LANGUAGE plpgsql
        AS $body$
        BEGIN
            -- first, as the request summaries' trigger does: writers queue
            -- on this row before touching any rollup row, and the
            -- dashboard's cached answers see the change
            UPDATE omni2_dashboard.cache_state
            SET generation = generation + 1;
            IF TG_OP = 'INSERT' THEN
                %s;
            ELSIF TG_OP = 'UPDATE' THEN
                %s;
                DELETE FROM omnichat.usage_rollup WHERE requests = 0;
            ELSIF TG_OP = 'DELETE' THEN
                %s;
                DELETE FROM omnichat.usage_rollup WHERE requests = 0;
            ELSE
                DELETE FROM omnichat.usage_rollup;
            END IF;
            RETURN NULL;
        END
        $body$
    $f$,
    format(merge, 'SELECT *, 1 AS sign FROM new_rows'),
    format(merge, 'SELECT *, 1 AS sign FROM new_rows'
                  ' UNION ALL SELECT *, -1 FROM old_rows'),
    format(merge, 'SELECT *, -1 AS sign FROM old_rows'));

    EXECUTE format(merge, 'SELECT *, 1 AS sign FROM omnichat.llm_usage');
END
$do$;

COMMENT ON FUNCTION omnichat.usage_rollup_apply() IS
    'Statement trigger on omnichat.llm_usage: bumps '
    'omni2_dashboard.cache_state.generation, then applies the statement''s '
    'rows (new minus old) to omnichat.usage_rollup in one upsert.';

CREATE TRIGGER llm_usage_rollup_insert
    AFTER INSERT ON omnichat.llm_usage
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION omnichat.usage_rollup_apply();
CREATE TRIGGER llm_usage_rollup_update
    AFTER UPDATE ON omnichat.llm_usage
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION omnichat.usage_rollup_apply();
CREATE TRIGGER llm_usage_rollup_delete
    AFTER DELETE ON omnichat.llm_usage
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION omnichat.usage_rollup_apply();
CREATE TRIGGER llm_usage_rollup_truncate
    AFTER TRUNCATE ON omnichat.llm_usage
    FOR EACH STATEMENT EXECUTE FUNCTION omnichat.usage_rollup_apply();
