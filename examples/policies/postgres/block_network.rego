# Sessions only from the office network or loopback, and never from
# spreadsheet tools (application_name as the client sends it). Judged once
# per connection, before the connector contacts the database: a blocked
# session ends with a FATAL and the database never sees it.
package formal.v2
import rego.v1

allowed_networks := ["127.0.0.0/8", "10.20.0.0/16"]

from_allowed_network if {
  some cidr in allowed_networks
  net.cidr_contains(cidr, input.client_ip_address)
}

session := {"action": "block", "reason": "client address not allowed"} if {
  not from_allowed_network
}

session := {"action": "block", "reason": "application not allowed"} if {
  from_allowed_network
  lower(input.application) in {"excel", "libreoffice calc"}
}
