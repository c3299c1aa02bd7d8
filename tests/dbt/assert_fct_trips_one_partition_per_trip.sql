-- A trip lives in exactly one partition, the date of its `requested` event: a trip in two
-- partitions would mean a backfill wrote a row outside its range.
select
    trip_id,
    count(distinct trip_date) as partitions
from {{ ref('fct_trips') }}
group by trip_id
having count(distinct trip_date) > 1
