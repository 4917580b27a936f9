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

-- Moves `amount` from account `src` to account `dst`. Both rows are locked in id order first, so
-- that two transfers in opposite directions wait for each other instead of deadlocking; a
-- transfer that would leave `src` below zero fails (it never happens with the benchmark's
-- balances, and keynote_pg counts a failure as an error).
CREATE OR REPLACE FUNCTION transfer(src integer, dst integer, amount bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  left_over bigint;
BEGIN
  PERFORM 1 FROM accounts WHERE id IN (src, dst) ORDER BY id FOR UPDATE;
  UPDATE accounts SET balance = balance - amount WHERE id = src RETURNING balance INTO left_over;
  IF left_over IS NULL THEN
    RAISE EXCEPTION 'no account %', src;
  END IF;
  IF left_over < 0 THEN
    RAISE EXCEPTION 'account % would go below zero', src;
  END IF;
  UPDATE accounts SET balance = balance + amount WHERE id = dst;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no account %', dst;
  END IF;
END
$$;
