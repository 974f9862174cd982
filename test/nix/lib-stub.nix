# A minimal stand-in for the few nixpkgs `lib` functions nix/ uses, so nix-instantiate can evaluate it without
# nixpkgs. Written from the functions' documented behaviour; options are plain records, mkIf/mkMerge are tagged.
rec {
  concatStringsSep = builtins.concatStringsSep;
  concatMapStringsSep = sep: f: list: builtins.concatStringsSep sep (map f list);
  nameValuePair = name: value: { inherit name value; };
  mapAttrs' = f: set: builtins.listToAttrs (map (n: f n set.${n}) (builtins.attrNames set));
  filterAttrs = pred: set: builtins.listToAttrs (builtins.concatMap (n: if pred n set.${n} then [ { name = n; value = set.${n}; } ] else [ ]) (builtins.attrNames set));
  optionalAttrs = cond: set: if cond then set else { };
  optional = cond: x: if cond then [ x ] else [ ];
  escapeShellArg = s: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s)}'";
  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: mkOption { default = false; description = "Whether to enable ${name}."; };
  mkPackageOption = _pkgs: name: _extra: mkOption { description = "The ${name} package."; };
  literalExpression = text: { _type = "literalExpression"; inherit text; };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  types = {
    bool = "bool";
    str = "str";
    package = "package";
    attrs = "attrs";
    listOf = t: { list = t; };
    attrsOf = t: { attrsOf = t; };
    nullOr = t: { nullOr = t; };
    submodule = m: { submodule = m; };
    anything = "anything";
  };

  # Not in nixpkgs' lib: resolves mkIf/mkMerge the way the module system does for one definition, and merges
  # attribute sets recursively (what NixOS does with several definitions of the same option tree).
  resolve =
    v:
    if builtins.isAttrs v && v ? _type && v._type == "if" then
      (if v.condition then resolve v.content else { })
    else if builtins.isAttrs v && v ? _type && v._type == "merge" then
      builtins.foldl' recursiveMerge { } (map resolve v.contents)
    else if builtins.isAttrs v && !(v ? _type) then
      builtins.mapAttrs (_: resolve) v
    else
      v;
  recursiveMerge =
    a: b:
    a
    // builtins.mapAttrs (
      n: bv: if a ? ${n} && builtins.isAttrs a.${n} && builtins.isAttrs bv then recursiveMerge a.${n} bv else bv
    ) b;
}
