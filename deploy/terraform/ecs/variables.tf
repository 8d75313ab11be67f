variable "name" {
  description = "Name of the ECS service and prefix of every resource."
  type        = string
  default     = "portcullis"
}

variable "image" {
  description = "Connector image without tag (deploy/docker/Dockerfile), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/portcullis."
  type        = string
}

variable "portcullis_version" {
  description = "Image tag: the VERSION of the release to run. Changing it rolls the service."
  type        = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  description = "Private subnets for the tasks and the internal NLB."
  type        = list(string)
}

variable "client_cidrs" {
  description = "Networks allowed to reach the listener ports."
  type        = list(string)
}

variable "listener_ports" {
  description = "Ports of the listeners defined in the control plane (one NLB listener each)."
  type        = list(number)
  default     = [5433]
}

variable "control_plane_url" {
  type = string
}

variable "token_secret_arn" {
  description = "Secrets Manager secret holding the connector's API token (portcullis ctl connectors create NAME)."
  type        = string
}

variable "desired_count" {
  type    = number
  default = 3
}

variable "cpu" {
  type    = number
  default = 1024
}

variable "memory" {
  type    = number
  default = 2048
}

variable "drain_timeout_seconds" {
  description = "shutdown.drain_timeout; the container's stopTimeout and the NLB deregistration delay are derived from it."
  type        = number
  default     = 30

  validation {
    # Fargate's stopTimeout is at most 120 s and must exceed the drain.
    condition     = var.drain_timeout_seconds > 0 && var.drain_timeout_seconds <= 100
    error_message = "drain_timeout_seconds must be between 1 and 100 (stopTimeout = drain + 20 <= 120)."
  }
}

variable "spool_max_bytes" {
  type    = string
  default = "10GiB"
}

variable "ephemeral_storage_gib" {
  description = "Fargate task storage holding the spool (log_spool.max_bytes) and etcd data."
  type        = number
  default     = 30
}

variable "cluster_enabled" {
  description = "cluster.enabled: run the etcd member and discover peers with ECS ListTasks/DescribeTasks."
  type        = bool
  default     = true
}

variable "otlp_endpoint" {
  description = "telemetry.otlp_endpoint (empty: no OTLP export; /metrics is always served)."
  type        = string
  default     = ""
}
