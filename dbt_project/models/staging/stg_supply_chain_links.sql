{{ stg_latest('supply_chain_links') }}
