"""Offline checks of the deployment descriptions: `template.yaml` (SAM) and `infra/` (Terraform)
must describe the same system, and both must use the state machine definitions unchanged.

- cfn-lint on the template; `sam validate --lint`; checkov on the template and on infra/ (with
  .checkov.yaml, whose skips docs/deploy.md explains);
- `terraform fmt -check` on infra/ when a terraform binary is installed (skipped, and said, when not);
- every .tf file under infra/ (the module and its examples) parses as HCL;
- the same functions (by binary), with the same environment variables;
- the same state machines (by definition file), each filling in exactly the placeholders its
  definition has;
- every environment variable a function gets is listed in example.env;
- the root modules that call infra/ (its example, localstack/) pass only variables it declares;
- no function but the backup writer, the maintainer and the eraser may write under a backup's `topics/`
- no function but the eraser may delete object versions
  (its segments): every other IAM statement that allows s3:PutObject names a folder of its own
  (snapshots/, validations/, restores/, offset-resets/), and one whose wildcard spans backups
  comes with a Deny on `*/topics/*`;
- localstack/: the compose file pins LocalStack to a release that starts without an auth token
  and puts the Lambda containers on the broker's network; its scripts parse (`bash -n`).

Exits 1 and names every difference found. `--root DIR` checks another checkout (the
checker's own test uses it on altered copies); `--fast` leaves out sam and checkov, which take
seconds each and which the self-test does not alter anything for.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import hcl2  # checkov's fork (bc-python-hcl2): the two packages share the module name
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS = sys.argv[1:]
FAST = "--fast" in ARGS
if "--root" in ARGS:
    REPO = os.path.abspath(ARGS[ARGS.index("--root") + 1])
TOOLS = os.path.dirname(sys.executable)
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
        if name.startswith("Fn::ForEach::"):
            continue  # the per-topic event source mappings
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


def one(value):
    """checkov's HCL parser (bc-python-hcl2) wraps each attribute value in a list."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def terraform_system():
    blocks = {"resource": [], "locals": []}
    infra = os.path.join(REPO, "infra")
    for directory, _, files in sorted(os.walk(infra)):
        for file in sorted(files):
            if not file.endswith(".tf"):
                continue
            path = os.path.join(directory, file)
            shown = os.path.relpath(path, REPO)
            try:
                with open(path) as source:
                    parsed = hcl2.load(source)
            except Exception as error:  # the parser's own exception types vary by version
                problem(f"{shown} does not parse as HCL: {error}")
                continue
            if directory != infra:
                continue  # examples call the module; the system is the module itself
            for kind in blocks:
                blocks[kind].extend(parsed.get(kind, []))
    local_values = {}
    for block in blocks["locals"]:
        local_values.update({name: one(value) for name, value in block.items()})

    def env_names(expression):
        """Variable names in an environment expression, following local.<name> references."""
        expression = one(expression)
        if isinstance(expression, dict):
            names = set(expression)
            text = json.dumps(expression)
        else:
            names, text = set(), str(expression)
        names |= set(re.findall(r"\b((?:TIDEMARK|MALLOC)_[A-Z0-9_]+)\b", text))
        for local in re.findall(r"local\.(\w+)", text):
            names |= env_names(local_values.get(local, {}))
        return {name for name in names if not name.startswith("${")}

    functions, machines = {}, {}
    for block in blocks["resource"]:
        for kind, instances in block.items():
            for name, resource in instances.items():
                if kind == "aws_lambda_function":
                    match = re.search(r"/([\w-]+)/bootstrap\.zip", str(one(resource.get("filename", ""))))
                    if not match:
                        problem(f"infra: aws_lambda_function.{name}: filename does not name a binary")
                        continue
                    environment = one(resource.get("environment", [{}]))
                    functions[match.group(1)] = env_names(environment.get("variables", {}))
                elif kind == "aws_sfn_state_machine":
                    definition = str(one(resource.get("definition", "")))
                    match = re.search(r"\.\./(statemachines/[\w.-]+\.json)", definition)
                    if not match:
                        problem(f"infra: aws_sfn_state_machine.{name}: definition is not a templatefile of statemachines/")
                        continue
                    # templatefile(path, {'Key': value, ...}) as the parser renders it.
                    keys = set(re.findall(r"""['"](\w+)['"]:""", definition.split(",", 1)[1]))
                    machines[match.group(1)] = keys
    return functions, machines


# Who may write a backup's segments, by logical id (SAM) or policy document name (Terraform).
SEGMENT_WRITERS = {"BackupWriterFunction", "MaintainerFunction", "EraserFunction", "backup_writer", "maintainer",
                   "eraser"}
# The folders other writers keep their own records in.
OWN_FOLDERS = re.compile(r"[/}](snapshots|validations|restores|offset-resets|drills|erasures|audit)/\*$")
WRITE_ACTIONS = {"s3:putobject", "s3:put*", "s3:*", "*"}


def strings(value):
    """Every string in a parsed value (an intrinsic's branches included), in order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def statements(value):
    """Every IAM statement (a mapping with Effect and Action) inside a parsed value."""
    if isinstance(value, dict):
        keys = {key.lower() for key in value}
        if {"effect", "action"} <= keys or {"effect", "actions"} <= keys:
            yield value
        for item in value.values():
            yield from statements(item)
    elif isinstance(value, list):
        for item in value:
            yield from statements(item)


# Who may delete object versions: only erasure must leave no earlier copy; anyone else could
# destroy the backup's history.
VERSION_DELETERS = {"EraserFunction", "eraser"}


def segment_write_scopes(owner, owner_statements, shown):
    """Problems with one owner's S3 write grants (see the module doc)."""
    if owner not in VERSION_DELETERS:
        for statement in owner_statements:
            fields = {key.lower(): one(value) for key, value in statement.items()}
            actions = {action.lower() for action in strings(fields.get("action", fields.get("actions", [])))}
            if str(fields.get("effect", "Allow")) != "Deny" and actions & {"s3:deleteobjectversion", "s3:*", "*"}:
                problem(f"{shown} {owner}: allows s3:DeleteObjectVersion; only the eraser may delete object versions")
    if owner in SEGMENT_WRITERS:
        return
    denies_topics = False
    spans_backups = []
    for statement in owner_statements:
        fields = {key.lower(): one(value) for key, value in statement.items()}
        effect = str(fields.get("effect", "Allow"))
        actions = {action.lower() for action in strings(fields.get("action", fields.get("actions", [])))}
        resources = [r for r in strings(fields.get("resource", fields.get("resources", []))) if "/" in r]
        if not actions & WRITE_ACTIONS:
            continue
        if effect == "Deny":
            denies_topics |= any(r.endswith("*/topics/*") for r in resources)
            continue
        for resource in resources:
            if not OWN_FOLDERS.search(resource):
                problem(f"{shown} {owner}: allows s3:PutObject on {resource}, which holds segments; "
                        "only the backup writer, the maintainer and the eraser may write there")
            elif "*/" in resource:
                spans_backups.append(resource)
    if spans_backups and not denies_topics:
        problem(f"{shown} {owner}: allows s3:PutObject on {spans_backups}, whose wildcard also matches a "
                "topic of that name: add a Deny of s3:PutObject on */topics/*")


def check_segment_writers():
    with open(os.path.join(REPO, "template.yaml")) as source:
        template = yaml.load(source, Loader=TemplateLoader)
    for name, resource in template["Resources"].items():
        if not isinstance(resource, dict) or resource.get("Type") == "AWS::S3::BucketPolicy":
            continue  # the bucket's own denies (TLS only), no grants
        segment_write_scopes(name, list(statements(resource.get("Properties", {}))), "template.yaml:")
    infra = os.path.join(REPO, "infra")
    for file in sorted(os.listdir(infra)):
        if not file.endswith(".tf"):
            continue
        try:
            with open(os.path.join(infra, file)) as source:
                parsed = hcl2.load(source)
        except Exception:  # already reported by terraform_system
            continue
        for block in parsed.get("data", []):
            for name, documents in block.get("aws_iam_policy_document", {}).items():
                found = [dict(one(s), effect=one(one(s).get("effect", "Allow")))
                         for s in one(documents).get("statement", [])]
                segment_write_scopes(name, found, f"infra/{file}:")


def tool(name, command):
    """Runs one offline checker in the repository; a non-zero exit is a problem, with its output."""
    # Neither tool may reach the network: SAM's telemetry and checkov's guideline download are off.
    environment = dict(os.environ, SAM_CLI_TELEMETRY="0", BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false")
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        problem(f"{name}:\n" + result.stdout + result.stderr)


def compare(sam, terraform, what):
    for key in sorted(set(sam) | set(terraform)):
        if key not in terraform:
            problem(f"{what} {key}: in template.yaml, not in infra/")
        elif key not in sam:
            problem(f"{what} {key}: in infra/, not in template.yaml")
        elif sam[key] != terraform[key]:
            problem(f"{what} {key}: template.yaml has {sorted(sam[key])}, infra/ has {sorted(terraform[key])}")


# The last LocalStack release that starts without LOCALSTACK_AUTH_TOKEN (later tags need one).
LAST_FREE_LOCALSTACK = (4, 14, 0)


def module_calls():
    """Every `module` block of a root module that uses infra/, with the variables it passes."""
    with open(os.path.join(REPO, "infra", "variables.tf")) as source:
        declared = {name for block in hcl2.load(source).get("variable", []) for name in block
                    if not name.startswith("__")}
    for root in ("infra/examples/msk/main.tf", "localstack/main.tf"):
        path = os.path.join(REPO, root)
        if not os.path.exists(path):
            problem(f"{root} is missing")
            continue
        try:
            with open(path) as source:
                modules = hcl2.load(source).get("module", [])
        except Exception as error:  # the parser's own exception types vary by version
            problem(f"{root} does not parse as HCL: {error}")
            continue
        for block in modules:
            for name, body in block.items():
                # The parser adds __start_line__ / __end_line__ to every block.
                passed = {key for key in body if not key.startswith("__")}
                passed -= {"source", "providers", "depends_on", "count", "for_each"}
                unknown = sorted(passed - declared)
                if unknown:
                    problem(f"{root}: module {name} passes {unknown}, which infra/variables.tf does not declare")
                yield root, name, body


def localstack_checks():
    compose_path = os.path.join(REPO, "localstack", "docker-compose.yml")
    with open(compose_path) as source:
        compose = yaml.safe_load(source)
    services = compose.get("services", {})
    for name in ("localstack", "kafka"):
        if name not in services:
            problem(f"localstack/docker-compose.yml: no {name} service")
    for name, service in services.items():
        image = service.get("image", "")
        if ":" not in image or image.endswith(":latest"):
            problem(f"localstack/docker-compose.yml: {name} image {image!r} is not pinned to a release")
    image = services.get("localstack", {}).get("image", "")
    version = re.fullmatch(r"localstack/localstack:(\d+)\.(\d+)\.(\d+)", image)
    if not version or tuple(map(int, version.groups())) > LAST_FREE_LOCALSTACK:
        problem(f"localstack/docker-compose.yml: {image!r} is not a LocalStack release that runs without an auth "
                f"token (<= {'.'.join(map(str, LAST_FREE_LOCALSTACK))})")
    network = services.get("localstack", {}).get("environment", {}).get("LAMBDA_DOCKER_NETWORK")
    names = {body.get("name", key) for key, body in compose.get("networks", {}).items()}
    if network not in names:
        problem(f"localstack/docker-compose.yml: LAMBDA_DOCKER_NETWORK={network!r} is none of its networks {sorted(names)}")
    for script in sorted(os.listdir(os.path.join(REPO, "localstack"))):
        if script.endswith(".sh"):
            result = subprocess.run(["bash", "-n", os.path.join(REPO, "localstack", script)], capture_output=True, text=True)
            if result.returncode != 0:
                problem(f"localstack/{script} does not parse: {result.stderr.strip()}")


def check_raw_records():
    """A mapping with a schema registry hands the writer decoded values, not the records' bytes
    (the writer refuses such events): no deployment may configure one."""
    texts = [("template.yaml", os.path.join(REPO, "template.yaml"))]
    for folder in ("infra", "localstack"):
        for directory, _, files in sorted(os.walk(os.path.join(REPO, folder))):
            texts += [(os.path.relpath(os.path.join(directory, f), REPO), os.path.join(directory, f))
                      for f in sorted(files) if f.endswith(".tf")]
    for shown, path in texts:
        with open(path) as source:
            if re.search(r"SchemaRegistryConfig|schema_registry_config", source.read()):
                problem(f"{shown}: an event source mapping with a schema registry delivers decoded "
                        "values, not the records' bytes; a backup's mappings must not set one")


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
        listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", source.read(), re.MULTILINE))
    for binary, names in sorted(sam_functions.items()):
        missing = sorted(names - listed)
        if missing:
            problem(f"function {binary}: {missing} not listed in example.env")

    for root, name, body in list(module_calls()):
        if root.startswith("localstack/") and one(body.get("event_source_mappings")) is not False:
            problem(f"{root}: module {name} must set event_source_mappings = false (the bridge plays the mapping)")
    localstack_checks()
    check_segment_writers()
    check_raw_records()

    tool("cfn-lint template.yaml", [os.path.join(TOOLS, "cfn-lint"), "template.yaml"])
    if not FAST:
        tool("sam validate --lint", [os.path.join(TOOLS, "sam"), "validate", "--lint", "--region", "us-east-1"])
        for framework, target in (("cloudformation", ["-f", "template.yaml"]), ("terraform", ["-d", "infra"])):
            tool(f"checkov ({framework})", [os.path.join(TOOLS, "checkov"), "--config-file", ".checkov.yaml",
                                            "--framework", framework, *target])
    terraform = shutil.which("terraform")
    if terraform:
        for directory in ("infra", "localstack"):
            tool(f"terraform fmt -check -recursive {directory}",
                 [terraform, "fmt", "-check", "-diff", "-recursive", directory])
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
