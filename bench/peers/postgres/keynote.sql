-- The keynote transfers workload on PostgreSQL: one row per account and a plpgsql transfer
-- function, each call its own transaction (bench/src/keynote_pg.c sends a Sync after every call).
-- Loaded by bench/keynote with: psql -v accounts=N -v balance=B -f keynote.sql
\set ON_ERROR_STOP on

DROP TABLE IF EXISTS accounts;
CREATE TABLE accounts (
  id integer PRIMARY KEY,
  balance bigint NOT NULL
);
INSERT INTO accounts (id, balance) SELECT g, :balance FROM generate_series(0, :accounts - 1) AS g;
VACUUM ANALYZE accounts;

-- Moves `amount` from account `src` to account `dst` and returns true. Both rows are locked in id
-- order first, so that two transfers in opposite directions wait for each other instead of
-- deadlocking. A source holding less than `amount` is keynote-2's insufficient_funds: nothing
-- moves and the call returns false (keynote_pg reports it apart and does not count it, as
-- keynote-2 does not count the SpacetimeDB reducer's failure). A missing account is an error.
DROP FUNCTION IF EXISTS transfer(integer, integer, bigint);
CREATE FUNCTION transfer(src integer, dst integer, amount bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM accounts WHERE id IN (src, dst) ORDER BY id FOR UPDATE;
  UPDATE accounts SET balance = balance - amount WHERE id = src AND balance >= amount;
  IF NOT FOUND THEN
    IF NOT EXISTS (SELECT 1 FROM accounts WHERE id = src) THEN
      RAISE EXCEPTION 'no account %', src;
    END IF;
    RETURN false;
  END IF;
  UPDATE accounts SET balance = balance + amount WHERE id = dst;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no account %', dst;
  END IF;
  RETURN true;
END
$$;
