/*
 * TEMPORARY: until the config and spool branches are merged, their functions
 * are referenced weakly so that this branch links; pc_connector_run refuses
 * to start when they are absent. Delete this header once they are merged
 * (weak references would otherwise keep their objects out of the link).
 */
#ifndef PC_CONNECTOR_WEAK_DEPS_H
#define PC_CONNECTOR_WEAK_DEPS_H
#pragma weak pc_config_load
#pragma weak pc_config_free
#pragma weak pc_snapshot_load_dir
#pragma weak pc_snapshot_ref
#pragma weak pc_snapshot_unref
#pragma weak pc_snapshot_resource
#pragma weak pc_spool_open
#pragma weak pc_spool_close
#pragma weak pc_spool_flush
#pragma weak pc_spool_get_stats
#pragma weak pc_audit_set_identity
#endif
