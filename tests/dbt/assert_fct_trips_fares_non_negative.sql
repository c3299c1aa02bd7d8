-- Fares are never negative: a negative fare means a broken fare rule or distance.
select
    trip_id,
    trip_date,
    fare_amount
from {{ ref('fct_trips') }}
where fare_amount < 0
