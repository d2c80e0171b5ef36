-- Deploy prompts (SPEC section 13): a production deploy stored by any source (API, GitHub, GitLab, Argo CD, CLI)
-- is marked `prompt_pending = 1` in the same statement that stores it; the timer worker takes pending deploys
-- (the partial index below), matches them against open incidents in triage or remediation, queues at most one
-- "was this the fix?" post per incident and deploy, and clears the mark. Rows stored before this migration, and
-- non-production deploys, are 0: nothing to match.
ALTER TABLE deploys ADD COLUMN prompt_pending BIGINT NOT NULL DEFAULT 0;
CREATE INDEX deploys_prompt_pending ON deploys (received_at) WHERE prompt_pending = 1;
