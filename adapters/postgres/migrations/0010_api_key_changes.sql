-- Every change to an API key, made by filegate (`keys revoke`) or by hand (an UPDATE, a DELETE,
-- a TRUNCATE), tells the servers listening on the channel `filegate_api_keys` which key hash to
-- forget ('*': all of them), so that a key a server keeps in memory is refused by every server
-- as soon as the notice, sent when the change commits, reaches it (docs/decisions.md, "Verified
-- API keys are kept in memory on Postgres"). A new key needs no notice: only keys found in the table are kept.
CREATE FUNCTION filegate_api_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('filegate_api_keys', '*');
    ELSE
        PERFORM pg_notify('filegate_api_keys', OLD.key_hash);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_changed
    AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION filegate_api_keys_changed();

CREATE TRIGGER api_keys_truncated
    AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION filegate_api_keys_changed();
