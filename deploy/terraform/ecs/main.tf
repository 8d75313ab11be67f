# Example: the Portcullis connector as an ECS Fargate service behind an internal NLB.
# Issue 7 item 5; operations: docs/operations.md.

terraform {
  required_version = ">= 1.3"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

data "aws_region" "current" {}

data "aws_vpc" "this" {
  id = var.vpc_id
}

locals {
  stop_timeout = var.drain_timeout_seconds + 20
  connector_config = templatefile("${path.module}/connector.yaml.tftpl", {
    control_plane_url     = var.control_plane_url
    drain_timeout_seconds = var.drain_timeout_seconds
    spool_max_bytes       = var.spool_max_bytes
    cluster_enabled       = var.cluster_enabled
    ecs_cluster           = aws_ecs_cluster.this.name
    ecs_service           = var.name
    otlp_endpoint         = var.otlp_endpoint
  })
}

resource "aws_ecs_cluster" "this" {
  name = var.name
}

resource "aws_cloudwatch_log_group" "connector" {
  name              = "/ecs/${var.name}"
  retention_in_days = 30
}

# ---------------------------------------------------------------- IAM

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# Execution role: pull the image, write logs, read the token secret.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "execution_secret" {
  name = "${var.name}-token-secret"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = [var.token_secret_arn]
    }]
  })
}

# Task role: cluster.discovery.mode ecs lists and describes the service's tasks.
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "task_discovery" {
  name = "${var.name}-ecs-discovery"
  role = aws_iam_role.task.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["ecs:ListTasks", "ecs:DescribeTasks"]
      Resource = "*"
      Condition = {
        ArnEquals = { "ecs:cluster" = aws_ecs_cluster.this.arn }
      }
    }]
  })
}

# ---------------------------------------------------------------- network

resource "aws_security_group" "connector" {
  name        = "${var.name}-connector"
  description = "Portcullis connector tasks"
  vpc_id      = var.vpc_id

  # etcd client and peer ports, between connector tasks only.
  ingress {
    description = "etcd client/peer from other connectors"
    from_port   = 2379
    to_port     = 2380
    protocol    = "tcp"
    self        = true
  }

  # NLB health checks (8080 /health) come from the load balancer's addresses in the VPC.
  ingress {
    description = "health checks"
    from_port   = 8080
    to_port     = 8080
    protocol    = "tcp"
    cidr_blocks = [data.aws_vpc.this.cidr_block]
  }

  dynamic "ingress" {
    for_each = toset(var.listener_ports)
    content {
      description = "listener ${ingress.value}"
      from_port   = ingress.value
      to_port     = ingress.value
      protocol    = "tcp"
      cidr_blocks = var.client_cidrs
    }
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_lb" "connector" {
  name               = var.name
  internal           = true
  load_balancer_type = "network"
  subnets            = var.subnet_ids
}

resource "aws_lb_target_group" "listener" {
  for_each    = toset([for p in var.listener_ports : tostring(p)])
  name        = "${var.name}-${each.key}"
  port        = tonumber(each.key)
  protocol    = "TCP"
  target_type = "ip"
  vpc_id      = var.vpc_id
  # Open sessions get the drain window before the target is gone.
  deregistration_delay = var.drain_timeout_seconds

  health_check {
    protocol            = "HTTP"
    port                = "8080"
    path                = "/health"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

resource "aws_lb_listener" "listener" {
  for_each          = aws_lb_target_group.listener
  load_balancer_arn = aws_lb.connector.arn
  port              = tonumber(each.key)
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = each.value.arn
  }
}

# ---------------------------------------------------------------- task and service

resource "aws_ecs_task_definition" "connector" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  ephemeral_storage {
    size_in_gib = var.ephemeral_storage_gib
  }

  # The audit spool (log_spool.dir) on the task's storage: it outlives container
  # restarts within the task; what is spooled is shipped to the control plane.
  volume {
    name = "spool"
  }

  volume {
    name = "etcd-data"
  }

  container_definitions = jsonencode([{
    name      = "connector"
    image     = "${var.image}:${var.portcullis_version}"
    essential = true
    user      = "10001:10001"
    # The configuration comes in through the environment and is written next to the spool.
    entryPoint = ["/bin/sh", "-c"]
    command = [
      "printf '%s' \"$PORTCULLIS_CONFIG_YAML\" > /var/lib/portcullis/connector.yaml && exec portcullis connector -c /var/lib/portcullis/connector.yaml"
    ]
    environment = [
      { name = "PORTCULLIS_CONFIG_YAML", value = local.connector_config },
    ]
    secrets = [
      { name = "PORTCULLIS_TOKEN", valueFrom = var.token_secret_arn },
    ]
    portMappings = concat(
      [
        { containerPort = 8080, protocol = "tcp" },
        { containerPort = 2379, protocol = "tcp" },
        { containerPort = 2380, protocol = "tcp" },
      ],
      [for p in var.listener_ports : { containerPort = p, protocol = "tcp" }]
    )
    mountPoints = [
      { sourceVolume = "spool", containerPath = "/var/lib/portcullis/logs" },
      { sourceVolume = "etcd-data", containerPath = "/var/lib/portcullis/etcd" },
    ]
    healthCheck = {
      command     = ["CMD", "portcullis", "healthcheck", "--url", "http://127.0.0.1:8080/ready"]
      interval    = 10
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }
    # SIGTERM, then this long for the graceful shutdown before SIGKILL.
    stopTimeout = local.stop_timeout
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.connector.name
        "awslogs-region"        = data.aws_region.current.name
        "awslogs-stream-prefix" = "connector"
      }
    }
  }])
}

resource "aws_ecs_service" "connector" {
  name            = var.name
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.connector.arn
  desired_count   = var.desired_count
  launch_type     = "FARGATE"

  # Rolling deployment with no capacity loss: new tasks must be healthy before old ones stop;
  # a deployment that never gets healthy rolls back.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  health_check_grace_period_seconds = 60
  wait_for_steady_state             = true

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.connector.id]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = aws_lb_target_group.listener
    content {
      target_group_arn = load_balancer.value.arn
      container_name   = "connector"
      container_port   = tonumber(load_balancer.key)
    }
  }

  depends_on = [aws_lb_listener.listener]
}
