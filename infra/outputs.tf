output "restore_state_machine_arn" {
  value       = aws_sfn_state_machine.restore.arn
  description = "Start restores here (docs/restore.md)."
}

output "offset_reset_state_machine_arn" {
  value       = aws_sfn_state_machine.offset_reset.arn
  description = "Start offset resets here (docs/offset-reset.md)."
}
