with

source as (

    select * from {{ source('rides', 'drivers') }}

),

renamed as (

    select
        -- ids
        driver_id,
        city_id,

        -- strings
        full_name,
        tier,
        vehicle_make,
        vehicle_model,
        _batch_id,

        -- numerics
        rating,
        vehicle_year,
        _schema_version,

        -- dates
        _ingested_date,

        -- timestamps
        signed_up_at,
        updated_at

    from source

),

deduplicated as (

    select * from renamed
    -- One row per change record (driver, updated_at); a re-delivery's latest batch wins.
    qualify row_number() over (
        partition by driver_id, updated_at
        order by _batch_id desc
    ) = 1

)

select * from deduplicated
