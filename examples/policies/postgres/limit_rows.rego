# Humans get at most 1000 rows per result set; machines are not limited.
# The client sees a CommandComplete count matching the rows it received.
package formal.v2
import rego.v1

post_request := {"action": "filter", "limit": 1000} if input.user.type == "human"
