-- 019_chat_model_targets: each model row keeps its target (provider, URL,
-- key reference, limits, current price: one element of turn_targets()'s
-- array) as JSON, kept current by triggers on the three tables it is made
-- of, so that a chat turn's plan reads one row where it joined providers,
-- models and prices and built the object at every turn: about a third of
-- turn_plan()'s time when the backend has been idle (SPEC 9's time to
-- first token). Admin writes are rare; turns are not.

ALTER TABLE omnichat.models ADD COLUMN target jsonb;

COMMENT ON COLUMN omnichat.models.target IS
    'The model as a chat turn''s target (omnichat.model_target()); NULL '
    'while it has no price. Kept by triggers; never written by hand.';

-- The target of model p_model as turn_targets() returns it, or NULL when
-- the model has no price.
CREATE FUNCTION omnichat.model_target(p_model uuid)
    RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object(
        'provider', p.name, 'type', p.type, 'base_url', p.base_url,
        'api_key_env', p.api_key_env, 'api_key_file', p.api_key_file,
        'model', m.name, 'model_id', m.id,
        'context_window', m.context_window,
        'max_output_tokens', m.max_output_tokens,
        'price_version', pr.version, 'input', pr.input,
        'output', pr.output, 'cached', pr.cached)
    FROM omnichat.models AS m
    JOIN omnichat.providers AS p ON p.id = m.provider_id
    JOIN LATERAL (SELECT * FROM omnichat.model_prices AS x
                  WHERE x.model_id = m.id
                  ORDER BY x.version DESC LIMIT 1) AS pr ON true
    WHERE m.id = p_model
$$;

CREATE FUNCTION omnichat.models_target_refresh()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_TABLE_NAME = 'providers' THEN
        UPDATE omnichat.models SET target = omnichat.model_target(id)
        WHERE provider_id = NEW.id;
    ELSIF TG_TABLE_NAME = 'model_prices' THEN
        UPDATE omnichat.models SET target = omnichat.model_target(id)
        WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.model_id
                        ELSE NEW.model_id END;
    ELSE
        UPDATE omnichat.models SET target = omnichat.model_target(id)
        WHERE id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

-- UPDATE OF lists what a target is made of: the trigger's own UPDATE of
-- target does not fire it again
CREATE TRIGGER models_target AFTER INSERT OR UPDATE OF provider_id, name,
    context_window, max_output_tokens ON omnichat.models
    FOR EACH ROW EXECUTE FUNCTION omnichat.models_target_refresh();
CREATE TRIGGER model_prices_target AFTER INSERT OR UPDATE OR DELETE
    ON omnichat.model_prices
    FOR EACH ROW EXECUTE FUNCTION omnichat.models_target_refresh();
CREATE TRIGGER providers_target AFTER UPDATE OF name, type, base_url,
    api_key_env, api_key_file ON omnichat.providers
    FOR EACH ROW EXECUTE FUNCTION omnichat.models_target_refresh();

UPDATE omnichat.models SET target = omnichat.model_target(id);

-- The same answer as 015's: the model (the first provider by name that
-- serves it), then the fallbacks of the conversation, else of its project,
-- else of that model, each an active priced model; a model without a
-- price is left out. The common case, no fallbacks, is one index scan of
-- models and the project's row.
CREATE OR REPLACE FUNCTION omnichat.turn_targets(c omnichat.conversations)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
AS $$
DECLARE
    first jsonb;
    fb jsonb;
    pfb jsonb;
BEGIN
    SELECT m.target, m.fallbacks INTO first, fb
    FROM omnichat.models AS m
    JOIN omnichat.providers AS p ON p.id = m.provider_id
    WHERE m.name = c.model AND m.active
    ORDER BY p.name LIMIT 1;
    IF NOT FOUND THEN
        RETURN '[]';
    END IF;
    IF c.fallbacks IS NOT NULL THEN
        fb := c.fallbacks;
    ELSE
        SELECT j.fallbacks INTO pfb FROM omnichat.projects AS j
        WHERE j.id = c.project_id;
        IF jsonb_array_length(pfb) > 0 THEN
            fb := pfb;
        END IF;
    END IF;
    IF jsonb_array_length(fb) = 0 THEN
        RETURN CASE WHEN first IS NULL THEN '[]'::jsonb
                    ELSE jsonb_build_array(first) END;
    END IF;
    RETURN (
        SELECT coalesce(jsonb_agg(w.target ORDER BY w.pos), '[]')
        FROM (SELECT 0 AS pos, first AS target WHERE first IS NOT NULL
              UNION ALL
              SELECT x.ord, m.target
              FROM jsonb_array_elements(fb) WITH ORDINALITY AS x(e, ord)
              JOIN omnichat.providers AS p ON p.name = x.e->>'provider'
              JOIN omnichat.models AS m ON m.provider_id = p.id
                  AND m.name = x.e->>'model' AND m.active
              WHERE m.target IS NOT NULL) AS w
    );
END
$$;
