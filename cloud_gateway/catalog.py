"""Catalog and pricing, in integer paise, with per-site overrides.

Other modules call:
* `parse_catalog_file(path)` / `parse_catalog(data, source)` -> `CatalogFile` (CLI `catalog load`);
* `replace_catalog_tx(tx, catalog)` inside a `Database.write` unit;
* `price_order(db, site, product, options, quantity)` -> amount in paise (orders service, at
  order creation and nowhere else: INVARIANTS rule 5);
* `site_catalog(db, site, currency)` -> `protocol.hub_api.Catalog` (GET /hub/catalog).

File format (TOML): ``[[products]]`` with code, name, price and an ``options`` array of
{code, name, price}; ``[[overrides]]`` with site, product, optional option, price, available.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from protocol.hub_api import Catalog, CatalogProduct

from .db import Database, Tx
from .errors import ValidationError

CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_PRICE = 10_000_000  # Rs 1,00,000: a vending machine never sells anything near this


class CatalogError(ValueError):
    """The catalog file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Item:
    product: str
    option: str  # '' = the product itself
    name: str
    price: int


@dataclass(frozen=True)
class Override:
    site: str
    product: str
    option: str
    price: int | None
    available: bool | None


@dataclass(frozen=True)
class CatalogFile:
    items: tuple[Item, ...]
    overrides: tuple[Override, ...]


def _price(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_PRICE:
        raise CatalogError(f"{where}: price must be an integer number of paise "
                           f"in 0..{MAX_PRICE}, got {value!r}")
    return value


def _code(value: object, where: str) -> str:
    if not isinstance(value, str) or not CODE_RE.match(value):
        raise CatalogError(f"{where}: code must match {CODE_RE.pattern}, got {value!r}")
    return value


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{where}: name must be a non-empty string")
    return value


def parse_catalog(data: dict[str, object], source: str) -> CatalogFile:
    items: list[Item] = []
    products = data.get("products")
    if not isinstance(products, list) or not products:
        raise CatalogError(f"{source}: needs at least one [[products]] entry")
    for i, raw in enumerate(products):
        where = f"{source}: products[{i}]"
        if not isinstance(raw, dict):
            raise CatalogError(f"{where}: must be a table")
        unknown = set(raw) - {"code", "name", "price", "options"}
        if unknown:
            raise CatalogError(f"{where}: unknown keys {sorted(unknown)}")
        code = _code(raw.get("code"), where)
        if any(it.product == code and it.option == "" for it in items):
            raise CatalogError(f"{where}: duplicate product {code!r}")
        items.append(Item(code, "", _name(raw.get("name"), where),
                          _price(raw.get("price"), where)))
        seen: set[str] = set()
        for j, opt in enumerate(raw.get("options", [])):
            owhere = f"{where}.options[{j}]"
            if not isinstance(opt, dict) or set(opt) - {"code", "name", "price"}:
                raise CatalogError(f"{owhere}: must be a table of code, name, price")
            ocode = _code(opt.get("code"), owhere)
            if ocode in seen:
                raise CatalogError(f"{owhere}: duplicate option {ocode!r}")
            seen.add(ocode)
            items.append(Item(code, ocode, _name(opt.get("name"), owhere),
                              _price(opt.get("price"), owhere)))
    known = {(it.product, it.option) for it in items}
    overrides: list[Override] = []
    raw_overrides = data.get("overrides", [])
    if not isinstance(raw_overrides, list):
        raise CatalogError(f"{source}: overrides must be an array of tables")
    for i, raw in enumerate(raw_overrides):
        where = f"{source}: overrides[{i}]"
        if not isinstance(raw, dict) or set(raw) - {"site", "product", "option", "price",
                                                    "available"}:
            raise CatalogError(f"{where}: keys are site, product, option, price, available")
        site = raw.get("site")
        if not isinstance(site, str) or not site:
            raise CatalogError(f"{where}: site must be a non-empty string")
        product = _code(raw.get("product"), where)
        option = raw.get("option", "")
        if not isinstance(option, str) or (product, option) not in known:
            raise CatalogError(f"{where}: no such product/option {product}/{option}")
        price = _price(raw["price"], where) if "price" in raw else None
        available = raw.get("available")
        if available is not None and not isinstance(available, bool):
            raise CatalogError(f"{where}: available must be true or false")
        overrides.append(Override(site, product, option, price, available))
    unknown_top = set(data) - {"products", "overrides", "currency"}
    if unknown_top:
        raise CatalogError(f"{source}: unknown keys {sorted(unknown_top)}")
    return CatalogFile(tuple(items), tuple(overrides))


def parse_catalog_file(path: Path) -> CatalogFile:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise CatalogError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: invalid TOML: {exc}") from None
    return parse_catalog(data, str(path))


def replace_catalog_tx(tx: Tx, catalog: CatalogFile) -> None:
    tx.execute("DELETE FROM catalog_overrides")
    tx.execute("DELETE FROM catalog")
    for pos, it in enumerate(catalog.items):
        tx.execute("INSERT INTO catalog (product, option, name, price, position) "
                   "VALUES (?, ?, ?, ?, ?)", (it.product, it.option, it.name, it.price, pos))
    for ov in catalog.overrides:
        tx.execute("INSERT OR REPLACE INTO catalog_overrides (site, product, option, price, "
                   "available) VALUES (?, ?, ?, ?, ?)",
                   (ov.site, ov.product, ov.option, ov.price,
                    None if ov.available is None else int(ov.available)))


_SITE_ROWS = """
    SELECT c.product, c.option, c.name, COALESCE(o.price, c.price) AS price,
           COALESCE(o.available, 1) AS available
    FROM catalog c LEFT JOIN catalog_overrides o
      ON o.site = ? AND o.product = c.product AND o.option = c.option
"""


def price_order(db: Database, site: str, product: str, options: list[str],
                quantity: int) -> int:
    """The order's amount in paise, or `ValidationError` naming the offending field."""
    rows = db.query(_SITE_ROWS + " WHERE c.product = ?", (site, product))
    base = next((r for r in rows if r["option"] == ""), None)
    if base is None:
        raise ValidationError(invalid={"product": f"unknown product {product!r}"})
    if not base["available"]:
        raise ValidationError(invalid={"product": f"{product!r} is not available at this site"})
    by_code = {r["option"]: r for r in rows if r["option"]}
    total = int(base["price"])
    invalid: dict[str, str] = {}
    if len(set(options)) != len(options):
        invalid["options"] = "an option may appear only once"
    for i, code in enumerate(options):
        row = by_code.get(code)
        if row is None:
            invalid[f"options.{i}"] = f"unknown option {code!r} for {product!r}"
        elif not row["available"]:
            invalid[f"options.{i}"] = f"option {code!r} is not available at this site"
        else:
            total += int(row["price"])
    if invalid:
        raise ValidationError(invalid=invalid)
    return total * quantity


def site_catalog(db: Database, site: str, currency: str) -> Catalog:
    rows = db.query(_SITE_ROWS + " ORDER BY c.position", (site,))
    products: dict[str, CatalogProduct] = {}
    for r in rows:
        if r["option"] == "":
            products[r["product"]] = {"code": r["product"], "name": r["name"],
                                      "price": int(r["price"]), "options": [],
                                      "available": bool(r["available"])}
    for r in rows:
        if r["option"] and r["available"] and r["product"] in products:
            products[r["product"]]["options"].append(
                {"code": r["option"], "name": r["name"], "price": int(r["price"])})
    return {"site": site, "currency": currency, "products": list(products.values())}


__all__ = ["CatalogError", "CatalogFile", "parse_catalog", "parse_catalog_file", "price_order",
           "replace_catalog_tx", "site_catalog"]
