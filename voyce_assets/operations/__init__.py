"""Operations: creating the catalog (``catalog_setup``), weekly Delta maintenance
(``delta_maintenance_job``: OPTIMIZE / VACUUM); later alerts, health."""
