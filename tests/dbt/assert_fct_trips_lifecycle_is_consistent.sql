-- Each trip's timestamps follow its lifecycle and its partition is its request date.
select
    trip_id,
    trip_status,
    trip_date,
    requested_at,
    accepted_at,
    completed_at,
    cancelled_at
from {{ ref('fct_trips') }}
where
    trip_date != cast(requested_at as date)
    or accepted_at < requested_at
    or completed_at < accepted_at
    or cancelled_at < requested_at
    or (trip_status = 'completed' and (completed_at is null or distance_miles is null))
    or (trip_status = 'cancelled' and cancelled_at is null)
