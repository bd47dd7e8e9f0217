output "restore_state_machine_arn" {
  value       = aws_sfn_state_machine.restore.arn
  description = "Start restores here (docs/restore.md)."
}
