# The schedules that start the validation, maintenance and drill state machines: one EventBridge
# rule each (none when its schedule is ""), and one role that may start only these machines.

locals {
  scheduled_machines = {
    validation = {
      schedule = var.validation_schedule
      machine  = aws_sfn_state_machine.validation.arn
      input    = jsonencode({ depth = var.validation_depth })
    }
    maintenance = {
      schedule = var.maintenance_schedule
      machine  = aws_sfn_state_machine.maintenance.arn
      input    = "{}"
    }
    drill = {
      schedule = var.drill_schedule
      machine  = aws_sfn_state_machine.drill.arn
      input = jsonencode({
        backup_id    = var.backup_id
        topics       = { include = [var.drill_topics] }
        tier         = { name = var.drill_tier, rto_target_seconds = var.drill_rto_target_seconds, rpo_target_seconds = var.drill_rpo_target_seconds }
        requested_by = "schedule:${local.name}-drill"
      })
    }
  }
  active_schedules = { for job, spec in local.scheduled_machines : job => spec if spec.schedule != "" }
}

resource "aws_cloudwatch_event_rule" "job" {
  for_each            = local.active_schedules
  name                = "${local.name}-${each.key}"
  description         = "Tidemark ${each.key}"
  schedule_expression = each.value.schedule
}

resource "aws_cloudwatch_event_target" "job" {
  for_each = local.active_schedules
  rule     = aws_cloudwatch_event_rule.job[each.key].name
  arn      = each.value.machine
  role_arn = aws_iam_role.schedules.arn
  input    = each.value.input
}

resource "aws_iam_role" "schedules" {
  name = "${local.name}-schedules"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "events.amazonaws.com" }
    }]
  })
}

resource "aws_iam_role_policy" "schedules" {
  role = aws_iam_role.schedules.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = "states:StartExecution"
      Resource = [for spec in local.scheduled_machines : spec.machine]
    }]
  })
}
