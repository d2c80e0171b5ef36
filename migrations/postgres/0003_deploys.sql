-- Deploy queries (issue 5).
-- "Recent production deploys to X and its dependencies" (incident card, deploy questions, MTTR summary, digest)
-- is served by 0001's deploys_service_time (service, deployed_at): one range scan per service, with the
-- environment checked on the few rows in the window. No second per-service index, so that every insert
-- writes one page fewer.
-- "Deploys today" across every service, and GET /api/v1/deploys without a service:
CREATE INDEX deploys_time ON deploys (deployed_at);
