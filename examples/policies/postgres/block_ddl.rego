# Block DDL (CREATE, ALTER, DROP, ...) for everyone outside the "dba" group.
# command_type is the statement's class from PostgreSQL's own parser:
# "query", "dml", "ddl", "dcl", "tcl", "utility" or "unknown".
package formal.v2
import rego.v1

pre_request := {
  "action": "block",
  "type": "block_with_custom_message",
  "reason": "DDL outside the dba group",
  "message": "schema changes are reserved to the dba group",
} if {
  input.query.command_type == "ddl"
  not "dba" in input.user.groups
}
