"""The AWS emulator (moto's server) with one gap closed: its Step Functions interpreter passes
`states:startExecution` parameters to boto unconverted and returns boto's field names, so a
definition written for AWS (`StateMachineArn`, `Input`, `Name` in; `Output`, `Status`, `Error`,
`Cause` out) fails with a KeyError. AWS, and LocalStack whose interpreter moto ported, convert
between the API's field names and boto's; this does the same for that one integration, which
the restore uses to run the offset-reset state machine as a child execution.

Run as moto_server: python local/moto_server.py -H HOST -p PORT
"""

import datetime
import sys

from moto.server import main
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_sfn as sfn_task,
)


def _boto_name(name):
    return name[:1].lower() + name[1:]


def _api_name(name):
    return name[:1].upper() + name[1:]


_original_normalise_parameters = sfn_task.StateTaskServiceSfn._normalise_parameters


def _normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
    _original_normalise_parameters(self, parameters, boto_service_name, service_action_name)
    for key in list(parameters):
        parameters[_boto_name(key)] = parameters.pop(key)


def _normalise_response(self, response, boto_service_name=None, service_action_name=None):
    for key in list(response):
        value = response.pop(key)
        # Step Functions shows the API's timestamps as epoch milliseconds.
        if isinstance(value, datetime.datetime):
            value = int(value.timestamp() * 1000)
        response[_api_name(key)] = value


sfn_task.StateTaskServiceSfn._normalise_parameters = _normalise_parameters
sfn_task.StateTaskServiceSfn._normalise_response = _normalise_response

if __name__ == "__main__":
    sys.exit(main())
