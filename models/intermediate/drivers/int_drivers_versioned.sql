-- SCD2 rows from the driver change records: each record is valid from its updated_at
-- until the next record of the same driver (valid_to null for the current one).
with

driver_changes as (

    select * from {{ ref('stg_rides__drivers') }}

),

versioned as (

    select
        driver_id,
        city_id,
        full_name,
        tier,
        vehicle_make,
        vehicle_model,
        rating,
        vehicle_year,
        signed_up_at,
        updated_at as valid_from,
        lead(updated_at) over (
            partition by driver_id
            order by updated_at
        ) as valid_to,
        cast(_ingested_date as timestamp) as loaded_at

    from driver_changes

)

select
    *,
    valid_to is null as is_current
from versioned
