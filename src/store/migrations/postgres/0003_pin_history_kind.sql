-- How each pin change came about: 'set', 'rm' or 'rollback'. `tabula pin rollback`
-- replays the history as a stack (a rollback undoes the change before it), so two
-- rollbacks in a row go two pins back rather than toggling.
ALTER TABLE pin_history ADD COLUMN kind TEXT NOT NULL DEFAULT 'set';
UPDATE pin_history SET kind = 'rm' WHERE reference IS NULL;
