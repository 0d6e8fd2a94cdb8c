-- 001_schemas (down): drops the schemas; RESTRICT, so it fails rather than
-- take along objects a later migration's down script did not remove.

DROP SCHEMA omni_metrics RESTRICT;
DROP SCHEMA omni2_dashboard RESTRICT;
DROP SCHEMA auth_service RESTRICT;
