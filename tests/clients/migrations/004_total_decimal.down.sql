ALTER TABLE orders ALTER COLUMN total TYPE INT USING (total * 100)::int;
