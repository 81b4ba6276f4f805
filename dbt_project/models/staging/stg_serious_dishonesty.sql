{{ stg_latest('serious_dishonesty') }}
