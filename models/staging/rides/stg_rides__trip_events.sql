with

source as (

    select * from {{ source('rides', 'trip_events') }}

),

renamed as (

    select
        -- ids
        event_id,
        trip_id,
        driver_id,
        rider_id,
        city_id,

        -- strings
        event_type,
        _batch_id,

        -- numerics: schema v2 carries kilometres and cents, v1 miles and currency units
        duration_seconds,
        surge_multiplier,
        coalesce(distance_miles, distance_km / 1.609344) as distance_miles,
        coalesce(
            base_fare, cast(base_fare_cents / 100 as numeric(10, 2))
        ) as base_fare,
        _schema_version,

        -- dates
        cast(event_at as date) as event_date,
        _ingested_date,

        -- timestamps
        event_at

    from source

),

deduplicated as (

    select * from renamed
    -- A re-delivered event keeps its event_id and event_at: the latest batch wins.
    -- Partitioning by event_at as well (re-deliveries share it, so this equals
    -- partitioning by event_id alone) lets DuckDB push a fact's filter on event_at below
    -- the deduplication, down to the bronze scan, where zone maps skip the row groups
    -- outside the range: a chunk of a backfill reads its days, not the whole table.
    qualify row_number() over (
        partition by event_at, event_id
        order by _batch_id desc
    ) = 1

)

select * from deduplicated
