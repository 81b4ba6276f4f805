{{ stg_latest('abnormal_operations') }}
