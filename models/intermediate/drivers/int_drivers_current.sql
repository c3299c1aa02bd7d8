-- The latest change record of each driver (the input of the drivers snapshot).
-- A view, not ephemeral: dbt snapshots cannot read an ephemeral model on their second run.
{{ config(materialized='view') }}

with

driver_changes as (

    select * from {{ ref('stg_rides__drivers') }}

),

current_profile as (

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
        updated_at

    from driver_changes
    qualify row_number() over (
        partition by driver_id
        order by updated_at desc
    ) = 1

)

select * from current_profile
