-- SCD2 rows of the latest dim_drivers version: one current row per driver, validity
-- intervals that start before they end, and no two rows of a driver starting together.
with

drivers as (

    select * from {{ ref('dim_drivers') }}

),

per_driver as (

    select
        driver_id,
        sum(case when is_current then 1 else 0 end) as current_rows,
        count(*) as version_rows,
        count(distinct valid_from) as distinct_starts
    from drivers
    group by driver_id

)

select
    driver_id,
    'not exactly one current row' as problem
from per_driver
where current_rows != 1

union all

select
    driver_id,
    'two rows start at the same time' as problem
from per_driver
where distinct_starts != version_rows

union all

select
    driver_id,
    'valid_to is not after valid_from' as problem
from drivers
where valid_to <= valid_from or (valid_to is null) != is_current
