"""Operations: creating the catalog (``catalog_setup``); later maintenance, alerts, health."""
