-- The observation dates T: the first day of every month in [observation_start, observation_end].
-- A feature at T sees only events with event_ts < T; T is midnight, so whole-day tiles are exact.
{{ month_starts(var('observation_start'), var('observation_end')) }}
