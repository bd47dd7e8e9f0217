"""Offline checks of the deployment descriptions: `template.yaml` (SAM) and `infra/` (Terraform)
must describe the same system, and both must use the state machine definitions unchanged.

- cfn-lint on the template;
- `terraform fmt -check` on infra/ when a terraform binary is installed (skipped, and said, when not);
- every .tf file parses as HCL;
- the same functions (by binary), with the same environment variables;
- the same state machines (by definition file), each filling in exactly the placeholders its
  definition has;
- every environment variable a function gets is listed in example.env.

Exits 1 and names every difference found. `--root DIR` checks another checkout (the
checker's own test uses it on altered copies).
"""

import json
import os
import re
import shutil
import subprocess
import sys

import hcl2
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if len(sys.argv) == 3 and sys.argv[1] == "--root":
    REPO = os.path.abspath(sys.argv[2])
problems = []


def problem(message):
    problems.append(message)


class TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form intrinsics (!Ref, !GetAtt, !Sub) as plain values."""


TemplateLoader.add_multi_constructor("!", lambda loader, suffix, node: (
    loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode)
    else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
    else loader.construct_mapping(node)))


def placeholders(definition_file):
    with open(os.path.join(REPO, definition_file)) as source:
        return set(re.findall(r"\$\{(\w+)\}", source.read()))


def sam_system():
    with open(os.path.join(REPO, "template.yaml")) as source:
        template = yaml.load(source, Loader=TemplateLoader)
    global_env = set(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    functions, machines = {}, {}
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
            if not binary:
                problem(f"template.yaml: {name} has no Metadata.BuildProperties.Binary")
                continue
            own = set(properties.get("Environment", {}).get("Variables", {}))
            functions[binary] = global_env | own
        elif resource["Type"] == "AWS::Serverless::StateMachine":
            machines[properties["DefinitionUri"]] = set(properties.get("DefinitionSubstitutions", {}))
    return functions, machines


def terraform_system():
    blocks = {"resource": [], "locals": []}
    for file in sorted(os.listdir(os.path.join(REPO, "infra"))):
        if not file.endswith(".tf"):
            continue
        path = os.path.join(REPO, "infra", file)
        try:
            with open(path) as source:
                parsed = hcl2.load(source)
        except Exception as error:  # the parser's own exception types vary by version
            problem(f"infra/{file} does not parse as HCL: {error}")
            continue
        for kind in blocks:
            blocks[kind].extend(parsed.get(kind, []))
    local_values = {}
    for block in blocks["locals"]:
        local_values.update(block)

    def env_names(expression):
        """Variable names in an environment expression, following local.<name> references."""
        if isinstance(expression, dict):
            names = set(expression)
            text = json.dumps(expression)
        else:
            names, text = set(), str(expression)
        names |= set(re.findall(r"\b(TIDEMARK_[A-Z0-9_]+)\b", text))
        for local in re.findall(r"local\.(\w+)", text):
            names |= env_names(local_values.get(local, {}))
        return {name for name in names if not name.startswith("${")}

    functions, machines = {}, {}
    for block in blocks["resource"]:
        for kind, instances in block.items():
            for name, resource in instances.items():
                if kind == "aws_lambda_function":
                    match = re.search(r"/([\w-]+)/bootstrap\.zip", resource.get("filename", ""))
                    if not match:
                        problem(f"infra: aws_lambda_function.{name}: filename does not name a binary")
                        continue
                    environment = resource.get("environment", [{}])
                    environment = environment[0] if isinstance(environment, list) else environment
                    functions[match.group(1)] = env_names(environment.get("variables", {}))
                elif kind == "aws_sfn_state_machine":
                    definition = resource.get("definition", "")
                    match = re.search(r"\.\./(statemachines/[\w.-]+\.json)", definition)
                    if not match:
                        problem(f"infra: aws_sfn_state_machine.{name}: definition is not a templatefile of statemachines/")
                        continue
                    # templatefile(path, {"Key": value, ...}) as the parser renders it.
                    keys = set(re.findall(r'"(\w+)":', definition.split(",", 1)[1]))
                    machines[match.group(1)] = keys
    return functions, machines


def compare(sam, terraform, what):
    for key in sorted(set(sam) | set(terraform)):
        if key not in terraform:
            problem(f"{what} {key}: in template.yaml, not in infra/")
        elif key not in sam:
            problem(f"{what} {key}: in infra/, not in template.yaml")
        elif sam[key] != terraform[key]:
            problem(f"{what} {key}: template.yaml has {sorted(sam[key])}, infra/ has {sorted(terraform[key])}")


def main():
    sam_functions, sam_machines = sam_system()
    tf_functions, tf_machines = terraform_system()
    compare(sam_functions, tf_functions, "function")
    compare(sam_machines, tf_machines, "state machine")
    for definition, keys in sam_machines.items():
        wanted = placeholders(definition)
        if keys != wanted:
            problem(f"state machine {definition}: its placeholders are {sorted(wanted)}, template.yaml fills {sorted(keys)}")
    with open(os.path.join(REPO, "example.env")) as source:
        listed = set(re.findall(r"^(TIDEMARK_[A-Z0-9_]+)=", source.read(), re.MULTILINE))
    for binary, names in sorted(sam_functions.items()):
        missing = sorted(names - listed)
        if missing:
            problem(f"function {binary}: {missing} not listed in example.env")

    lint = subprocess.run([os.path.join(os.path.dirname(sys.executable), "cfn-lint"), "template.yaml"],
                          cwd=REPO, capture_output=True, text=True)
    if lint.returncode != 0:
        problem("cfn-lint template.yaml:\n" + lint.stdout + lint.stderr)
    terraform = shutil.which("terraform")
    if terraform:
        fmt = subprocess.run([terraform, "fmt", "-check", "-diff", "infra"], cwd=REPO, capture_output=True, text=True)
        if fmt.returncode != 0:
            problem("terraform fmt -check infra:\n" + fmt.stdout + fmt.stderr)
    else:
        print("terraform is not installed: skipping terraform fmt -check (HCL parsing still ran)")

    if problems:
        for message in problems:
            print(f"deploy check: {message}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"functions": sorted(sam_functions), "state_machines": sorted(sam_machines),
                      "checks": "template.yaml and infra/ agree"}))


if __name__ == "__main__":
    main()
