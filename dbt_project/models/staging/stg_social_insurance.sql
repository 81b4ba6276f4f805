{{ stg_latest('social_insurance') }}
