"""The deploy check's own test: on copies of the repository's template.yaml, infra/,
statemachines/ and example.env, each altered in one way, check_deploy.py must fail and name the
difference; on the unaltered copy it must pass."""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def run_on(alter):
    with tempfile.TemporaryDirectory() as root:
        for name in ("template.yaml", "example.env"):
            shutil.copy(os.path.join(REPO, name), root)
        for name in ("infra", "statemachines"):
            shutil.copytree(os.path.join(REPO, name), os.path.join(root, name))
        alter(root)
        result = subprocess.run([sys.executable, os.path.join(HERE, "check_deploy.py"), "--root", root],
                                capture_output=True, text=True)
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


CASES = [
    ("a Terraform environment variable renamed",
     replace("infra/offset_reset.tf", "TIDEMARK_OFFSET_RESET_CONCURRENCY =", "TIDEMARK_OFFSET_RESET_PARALLELISM ="),
     "function offset-reset: template.yaml has"),
    ("a SAM substitution dropped",
     replace("template.yaml", "        OffsetResetStateMachineArn: !Ref OffsetResetStateMachine\n", ""),
     "its placeholders are"),
    ("a function only in SAM",
     replace("infra/offset_reset.tf", "/offset-reset/bootstrap.zip", "/offset-resetter/bootstrap.zip"),
     "function offset-reset: in template.yaml, not in infra/"),
    ("a state machine's definition file swapped in Terraform",
     replace("infra/offset_reset.tf", "statemachines/offset-reset.asl.json", "statemachines/restore.asl.json"),
     "state machine statemachines/offset-reset.asl.json: in template.yaml, not in infra/"),
    ("a variable missing from example.env",
     replace("example.env", "TIDEMARK_OFFSET_RESET_CONCURRENCY=32\n", ""),
     "not listed in example.env"),
    ("a template cfn-lint rejects",
     replace("template.yaml", "      Timeout: 900\n", "      Timeout: 9000\n"),
     "cfn-lint template.yaml"),
    ("a .tf file that does not parse",
     replace("infra/outputs.tf", "output \"offset_reset_state_machine_arn\" {", "output \"offset_reset_state_machine_arn\" {{"),
     "does not parse as HCL"),
]


def main():
    status, output = run_on(lambda root: None)
    failures = [] if status == 0 else [f"the unaltered copy fails:\n{output}"]
    for name, alter, expected in CASES:
        status, output = run_on(alter)
        if status == 0 or expected not in output:
            failures.append(f"{name}: expected a failure saying {expected!r}, got exit {status}:\n{output}")
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    print(f"deploy check self-test: {len(CASES) + 1 - len(failures)} of {len(CASES) + 1} cases as expected")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
