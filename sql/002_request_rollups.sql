-- 002_request_rollups: per-minute request rollups with latency histograms,
-- and the functions that merge them, bound their buckets and prune them.

CREATE TABLE omni_metrics.request_rollup (
    minute  timestamptz NOT NULL,
    route   text        NOT NULL,
    status  smallint    NOT NULL,
    count   bigint      NOT NULL,
    sum_us  bigint      NOT NULL,
    max_us  bigint      NOT NULL,
    hist    bigint[]    NOT NULL,
    PRIMARY KEY (minute, route, status),
    CONSTRAINT request_rollup_hist_120
        CHECK (array_ndims(hist) = 1 AND array_length(hist, 1) = 120)
);

COMMENT ON TABLE omni_metrics.request_rollup IS
    'Requests per minute, route pattern (e.g. GET /api/v1/config/{key}) and '
    'HTTP status: count, total and max latency in microseconds, and a latency '
    'histogram. Writers merge with INSERT ... ON CONFLICT (minute, route, '
    'status) DO UPDATE using omni_metrics.hist_add; readers merge minutes with '
    'omni_metrics.hist_sum. Pruned by omni_metrics.prune_rollups.';
COMMENT ON COLUMN omni_metrics.request_rollup.minute IS
    'Start of the minute (seconds and fractions zero).';
COMMENT ON COLUMN omni_metrics.request_rollup.route IS
    'Method and route pattern, never the raw path: GET /api/v1/config/{key}.';
COMMENT ON COLUMN omni_metrics.request_rollup.hist IS
    'Latency histogram: exactly 120 bucket counts (hist[1] is bucket 0). '
    'Buckets 0..3 hold 0, 1, 2, 3 us. For us >= 4: k = floor(log2(us)), '
    'sub = (us >> (k - 2)) & 3, bucket = 4 * (k - 1) + sub, clamped to 119: '
    'four buckets per power of two. Bucket b >= 4 holds the half-open range '
    '[(4 + b % 4) << (b / 4 - 1), (5 + b % 4) << (b / 4 - 1)) us; bucket 119 '
    'has no upper bound (from 7 << 28 us, about 31 minutes). Same as '
    'worker/src/hist.c; see omni_metrics.hist_bucket, hist_bucket_lower, '
    'hist_bucket_upper.';


CREATE FUNCTION omni_metrics.hist_bucket(us bigint) RETURNS int
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE WHEN us < 4 THEN greatest(us, 0)::int
                ELSE least(119, 4 * (k - 1) + ((us >> (k - 2)) & 3))::int
           END
    FROM (SELECT 64 - position('1' IN us::bit(64)::text) AS k) AS t
$$;

COMMENT ON FUNCTION omni_metrics.hist_bucket(bigint) IS
    'Histogram bucket (0..119) of a latency in microseconds; negative counts '
    'as 0. The reference for writers: see the comment on request_rollup.hist.';


CREATE FUNCTION omni_metrics.hist_bucket_lower(b int) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE WHEN b < 0 OR b > 119 THEN NULL
                WHEN b < 4 THEN b::bigint
                ELSE (4 + b % 4)::bigint << (b / 4 - 1)
           END
$$;

COMMENT ON FUNCTION omni_metrics.hist_bucket_lower(int) IS
    'Smallest latency in microseconds that falls in bucket b (0..119); NULL '
    'for b outside 0..119.';


CREATE FUNCTION omni_metrics.hist_bucket_upper(b int) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE WHEN b < 0 OR b >= 119 THEN NULL
                WHEN b < 4 THEN (b + 1)::bigint
                ELSE (5 + b % 4)::bigint << (b / 4 - 1)
           END
$$;

COMMENT ON FUNCTION omni_metrics.hist_bucket_upper(int) IS
    'Exclusive upper bound in microseconds of bucket b: the lower bound of '
    'bucket b + 1. NULL for bucket 119, which is unbounded (use the max_us '
    'column), and for b outside 0..119.';


CREATE FUNCTION omni_metrics.hist_add(a bigint[], b bigint[])
    RETURNS bigint[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i),
                    '{}')
    FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)
$$;

COMMENT ON FUNCTION omni_metrics.hist_add(bigint[], bigint[]) IS
    'Element-wise sum of two histograms. A NULL argument (or a shorter array) '
    'counts as zeros, so it also serves as the first step of hist_sum.';


CREATE AGGREGATE omni_metrics.hist_sum(bigint[]) (
    SFUNC = omni_metrics.hist_add,
    STYPE = bigint[],
    COMBINEFUNC = omni_metrics.hist_add,
    PARALLEL = SAFE
);

COMMENT ON AGGREGATE omni_metrics.hist_sum(bigint[]) IS
    'Element-wise sum of histograms over rows, e.g. all minutes of an hour; '
    'NULL over no rows.';


CREATE FUNCTION omni_metrics.prune_rollups(keep interval) RETURNS bigint
    LANGUAGE plpgsql
AS $$
DECLARE
    n bigint;
BEGIN
    IF keep IS NULL OR keep <= interval '0' THEN
        RAISE EXCEPTION 'omni_metrics.prune_rollups: keep must be a positive '
                        'interval, not %', keep
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM omni_metrics.request_rollup WHERE minute < now() - keep;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

COMMENT ON FUNCTION omni_metrics.prune_rollups(interval) IS
    'Retention: deletes rollup minutes older than now() - keep and returns '
    'how many rows went. keep must be positive.';
