output "nlb_dns_name" {
  description = "Clients connect to the listener ports on this name."
  value       = aws_lb.connector.dns_name
}

output "service_name" {
  value = aws_ecs_service.connector.name
}

output "security_group_id" {
  value = aws_security_group.connector.id
}
