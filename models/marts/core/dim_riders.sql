-- One row per rider (the latest delivery of the rider's profile).
with

riders as (

    select * from {{ ref('stg_rides__riders') }}

),

final as (

    select
        -- ids
        cast(rider_id as string) as rider_id,
        cast(city_id as string) as city_id,

        -- strings
        cast(full_name as string) as rider_name,
        cast(email as string) as email,

        -- timestamps
        cast(signed_up_at as timestamp) as signed_up_at,
        cast(_ingested_date as timestamp) as loaded_at

    from riders

)

select * from final
