with

source as (

    select * from {{ source('rides', 'riders') }}

),

renamed as (

    select
        -- ids
        rider_id,
        city_id,

        -- strings
        full_name,
        email,
        _batch_id,

        -- numerics
        _schema_version,

        -- dates
        _ingested_date,

        -- timestamps
        signed_up_at

    from source

),

deduplicated as (

    select * from renamed
    -- One row per rider; a re-delivery's latest batch wins.
    qualify row_number() over (
        partition by rider_id
        order by _batch_id desc
    ) = 1

)

select * from deduplicated
