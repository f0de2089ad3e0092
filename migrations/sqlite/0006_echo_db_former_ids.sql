-- The ids an echo DB had on its host before a refresh gave it a new one (a JSON array of
-- strings), so a client that kept the old id still reaches it.
ALTER TABLE echo_dbs ADD COLUMN former_db_ids TEXT NOT NULL DEFAULT '[]';
