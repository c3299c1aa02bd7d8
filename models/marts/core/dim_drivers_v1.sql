{{ config(post_hook="{{ create_latest_version_view() }}") }}
-- Version 1 of the drivers dimension (deprecated): SCD2 rows, one per driver change.
with

driver_versions as (

    select * from {{ ref('int_drivers_versioned') }}

),

final as (

    select
        -- ids
        cast(driver_id as string) as driver_id,
        cast(city_id as string) as city_id,

        -- strings
        cast(full_name as string) as driver_name,
        cast(tier as string) as tier,
        cast(concat(vehicle_make, ' ', vehicle_model) as string) as vehicle,

        -- numerics
        cast(rating as numeric(3, 2)) as rating,

        -- booleans
        cast(is_current as boolean) as is_current,

        -- timestamps
        cast(valid_from as timestamp) as valid_from,
        cast(valid_to as timestamp) as valid_to,
        cast(loaded_at as timestamp) as loaded_at

    from driver_versions

)

select * from final
