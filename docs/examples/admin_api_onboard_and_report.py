#!/usr/bin/env python3
"""Onboard users and pull a monthly report through the admin API
(docs/admin-api.md). Standard library only.

    export ADMIN_API_TOKEN=eat_…          # a read-write token from the panel
    python3 docs/examples/admin_api_onboard_and_report.py \\
        --base-url https://admin.example.com --limits limits.csv --month 2026-11

``limits.csv`` has lines ``email,inference_limit``: each user found in the
organization gets that monthly inference limit (dry run of the whole set first,
as the panel's bulk confirmation). Then the month's usage per user is printed as
CSV. Exits 1 with the API's ``detail`` when a call is refused.
"""

import argparse
import csv
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class ApiError(Exception):
    pass


class AdminApi:
    def __init__(self, base_url: str, token: str):
        self.base = base_url.rstrip("/") + "/api/v1/admin"
        self.token = token

    def call(self, method: str, path: str, body=None, params=None):
        url = self.base + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (the URL is the caller's)
            url,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = json.loads(error.read() or b"{}")
            raise ApiError(
                f"{method} {path}: {error.code} {detail.get('error')}: "
                f"{detail.get('detail')}"
            ) from None

    def pages(self, path: str, params: dict):
        """Every row of a cursor-paginated list."""
        params = dict(params)
        while True:
            page = self.call("GET", path, params=params)
            yield from page["results"]
            if not page["next"]:
                return
            params["cursor"] = page["next"]


def onboard(api: AdminApi, limits: dict[str, int], out) -> None:
    users = {u["email"]: u for u in api.pages("/users", {"limit": 200})}
    missing = sorted(set(limits) - set(users))
    for email in missing:
        print(f"not in the organization, skipped: {email}", file=out)
    by_limit: dict[int, list[int]] = {}
    for email, limit in limits.items():
        if email in users:
            by_limit.setdefault(limit, []).append(users[email]["id"])
    for limit, ids in sorted(by_limit.items()):
        body = {"user_ids": ids, "token_type": "inference", "limit": limit}
        effect = api.call("POST", "/users/bulk/limit", {**body, "dry_run": True})
        if effect["effect"]["refusal"]:
            raise ApiError(effect["effect"]["refusal"])
        done = api.call("POST", "/users/bulk/limit", body)
        print(f"limit {limit}: {done['changed']} user(s) changed", file=out)


def report(api: AdminApi, month: str, out) -> None:
    summary = api.call(
        "GET", "/usage/summary", params={"period": "month", "month": month}
    )
    writer = csv.writer(out)
    writer.writerow(["email", "inference", "embedding", "total", "max_inference"])
    for user in summary["users"]:
        writer.writerow(
            [
                user["email"],
                user["inference"],
                user["embedding"],
                user["total"],
                user["max_inference"],
            ]
        )


def main(argv=None, out=sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--limits", help="CSV of email,inference_limit")
    parser.add_argument("--month", required=True, help="YYYY-MM")
    args = parser.parse_args(argv)
    api = AdminApi(args.base_url, os.environ["ADMIN_API_TOKEN"])
    try:
        me = api.call("GET", "/token")
        print(f"acting as {me['owner_email']} on {me['organization_name']}", file=out)
        if args.limits:
            with open(args.limits, newline="", encoding="utf-8") as handle:
                limits = {row[0].strip(): int(row[1]) for row in csv.reader(handle)}
            onboard(api, limits, out)
        report(api, args.month, out)
    except ApiError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
