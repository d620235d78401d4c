-- The run an appliance reports it was last converged by (the run's last play
-- writes the run id next to the applied revision; the agent sends it). A
-- heartbeat that reports an older run than the last one that succeeded there
-- was collected before that run finished: it is no evidence of drift
-- (engine/planning/policy.py). NULL: an agent that predates the field, or a box
-- no run has reached yet.
ALTER TABLE observed_latest ADD COLUMN applied_run bigint;
ALTER TABLE observed_history ADD COLUMN applied_run bigint;
