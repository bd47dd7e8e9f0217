"""The deploy check's own test: on copies of the repository's template.yaml, infra/,
statemachines/, localstack/ and example.env, each altered in one way, check_deploy.py must fail and name the
difference; on the unaltered copy it must pass."""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def run_on(alter, fast):
    with tempfile.TemporaryDirectory() as root:
        for name in ("template.yaml", "example.env", ".checkov.yaml"):
            shutil.copy(os.path.join(REPO, name), root)
        for name in ("infra", "statemachines", "localstack"):
            shutil.copytree(os.path.join(REPO, name), os.path.join(root, name),
                            ignore=shutil.ignore_patterns(".venv", ".build", ".terraform*", "terraform.tfstate*"))
        alter(root)
        command = [sys.executable, os.path.join(HERE, "check_deploy.py"), "--root", root]
        result = subprocess.run(command + (["--fast"] if fast else []), capture_output=True, text=True)
        return result.returncode, result.stdout + result.stderr


def replace(relative, old, new):
    def alter(root):
        path = os.path.join(root, relative)
        with open(path) as source:
            text = source.read()
        assert old in text, f"{relative} no longer contains {old!r}: update this test"
        with open(path, "w") as target:
            target.write(text.replace(old, new))
    return alter


# (name, alteration, what the failure must say, whether --fast still catches it)
CASES = [
    ("a Terraform environment variable renamed",
     replace("infra/offset_reset.tf", "TIDEMARK_OFFSET_RESET_CONCURRENCY =", "TIDEMARK_OFFSET_RESET_PARALLELISM ="),
     "function offset-reset: template.yaml has", True),
    ("a SAM substitution dropped",
     replace("template.yaml", "        OffsetResetStateMachineArn: !Ref OffsetResetStateMachine\n", ""),
     "its placeholders are", True),
    ("a function only in SAM",
     replace("infra/offset_reset.tf", "/offset-reset/bootstrap.zip", "/offset-resetter/bootstrap.zip"),
     "function offset-reset: in template.yaml, not in infra/", True),
    ("a state machine's definition file swapped in Terraform",
     replace("infra/offset_reset.tf", "statemachines/offset-reset.asl.json", "statemachines/restore.asl.json"),
     "state machine statemachines/offset-reset.asl.json: in template.yaml, not in infra/", True),
    ("a mapping that decodes records through a schema registry",
     replace("infra/backup.tf", "  batch_size        = var.batch_size\n",
             "  batch_size        = var.batch_size\n  schema_registry_config {\n    event_record_format = \"JSON\"\n  }\n"),
     "a backup's mappings must not set one", True),
    ("a variable missing from example.env",
     replace("example.env", "TIDEMARK_OFFSET_RESET_CONCURRENCY=32\n", ""),
     "not listed in example.env", True),
    ("a template cfn-lint rejects",
     replace("template.yaml", "      Timeout: 900\n", "      Timeout: 9000\n"),
     "cfn-lint template.yaml", True),
    ("a .tf file that does not parse",
     replace("infra/outputs.tf", "output \"offset_reset_state_machine_arn\" {", "output \"offset_reset_state_machine_arn\" {{"),
     "does not parse as HCL", True),
    ("a bucket that no longer blocks public access in SAM",
     replace("template.yaml", "        RestrictPublicBuckets: true\n", "        RestrictPublicBuckets: false\n"),
     "checkov (cloudformation)", False),
    ("a bucket that no longer blocks public access in Terraform",
     replace("infra/storage.tf", "  restrict_public_buckets = true\n", "  restrict_public_buckets = false\n"),
     "checkov (terraform)", False),
    ("LocalStack unpinned",
     replace("localstack/docker-compose.yml", "image: localstack/localstack:4.14.0", "image: localstack/localstack:latest"),
     "is not pinned to a release", True),
    ("a root module passing a variable the module lacks",
     replace("localstack/main.tf", "  event_source_mappings  = false\n", "  event_source_mapping   = false\n"),
     "which infra/variables.tf does not declare", True),
    ("the restore functions allowed to write a backup's segments in SAM",
     replace("template.yaml", '[!Sub "${BackupBucket.Arn}/*/restores/*", !Sub "${BackupBucket.Arn}/offset-resets/*"]',
             '[!Sub "${BackupBucket.Arn}/*", !Sub "${BackupBucket.Arn}/offset-resets/*"]'),
     "RestoreFunctionsPolicy: allows s3:PutObject on ${BackupBucket.Arn}/*, which holds segments", True),
    ("the snapshotter allowed to write a backup's segments in Terraform",
     replace("infra/snapshots.tf", '${local.backup_root}/snapshots/*"]', '${local.backup_root}/*"]'),
     "offset_snapshotter: allows s3:PutObject on", True),
    ("the restore's deny of segment writes dropped in Terraform",
     replace("infra/restore.tf", '    effect    = "Deny"\n    actions   = ["s3:PutObject"]',
             '    effect    = "Deny"\n    actions   = ["s3:GetObjectAcl"]'),
     "add a Deny of s3:PutObject on */topics/*", True),
    ("the maintainer allowed to delete object versions in SAM",
     replace("template.yaml", "Action: [s3:GetObject, s3:PutObject, s3:PutObjectTagging, s3:DeleteObject]\n",
             "Action: [s3:GetObject, s3:PutObject, s3:PutObjectTagging, s3:DeleteObject, s3:DeleteObjectVersion]\n"),
     "MaintainerFunction: allows s3:DeleteObjectVersion; only the eraser may delete object versions", True),
    ("the maintainer allowed to delete object versions in Terraform",
     replace("infra/maintenance.tf", '"s3:PutObjectTagging", "s3:DeleteObject"]',
             '"s3:PutObjectTagging", "s3:DeleteObject", "s3:DeleteObjectVersion"]'),
     "maintainer: allows s3:DeleteObjectVersion", True),
    ("an unformatted .tf file",
     replace("infra/logs.tf", "  retention_in_days = var.log_retention_days\n", "  retention_in_days=var.log_retention_days\n"),
     "terraform fmt", True),
]


def main():
    # The full check (sam, checkov) has just run on the repository itself (local/test.sh), so the
    # unaltered copy needs only the fast one.
    status, output = run_on(lambda root: None, fast=True)
    failures = [] if status == 0 else [f"the unaltered copy fails:\n{output}"]
    for name, alter, expected, fast in CASES:
        if expected == "terraform fmt" and not shutil.which("terraform"):
            print(f"skipped (no terraform binary): {name}")
            continue
        status, output = run_on(alter, fast)
        if status == 0 or expected not in output:
            failures.append(f"{name}: expected a failure saying {expected!r}, got exit {status}:\n{output}")
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    print(f"deploy check self-test: {len(CASES) + 1 - len(failures)} of {len(CASES) + 1} cases as expected")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
