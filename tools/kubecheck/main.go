// kubecheck validates rendered Kubernetes manifests offline, as the API server would, without the
// JSON schemas kubeconform downloads from GitHub at run time:
//
//   - built-in kinds are decoded strictly into the Kubernetes Go types (k8s.io/api through
//     client-go's scheme): an unknown or duplicated field, or a value of the wrong type, is an
//     error (the API server's `fieldValidation=Strict`, kubectl's default);
//   - custom resources (KEDA ScaledObject, ServiceMonitor, PrometheusRule, ...) are checked against
//     the openAPIV3Schema of the CRD files given with -crd, with the API server's own CR validator
//     (k8s.io/apiextensions-apiserver) and its pruning pass to find unknown fields; a kind with
//     neither Go type nor CRD is an error;
//   - every object: metadata validated like the API server's ObjectMeta checks (DNS names, label
//     and annotation syntax); workloads: a selector that matches the pod template's labels;
//     containers: probes that name a declared port.
//
// Usage: kubecheck [-crd file.yaml]... < manifests.yaml   (or file arguments)
// Prints one line per object and exits 1 on the first file with problems (all problems listed).
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

type crdVersion struct {
	validator  validation.SchemaValidator
	structural *structuralschema.Structural
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var crdFiles multiFlag
	flag.Var(&crdFiles, "crd", "CustomResourceDefinition YAML file (repeatable)")
	flag.Parse()

	crds := map[schema.GroupVersionKind]crdVersion{}
	for _, f := range crdFiles {
		if err := loadCRDs(f, crds); err != nil {
			fmt.Fprintf(os.Stderr, "kubecheck: %s: %v\n", f, err)
			os.Exit(2)
		}
	}

	inputs := flag.Args()
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	failed := false
	for _, in := range inputs {
		var data []byte
		var err error
		if in == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(in)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "kubecheck: %v\n", err)
			os.Exit(2)
		}
		if !checkStream(in, data, crds) {
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func splitDocs(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
}

func stripComments(d []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(d, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) == 0 || t[0] == '#' || string(t) == "---" {
			continue
		}
		out = append(out, l)
	}
	return bytes.Join(out, []byte("\n"))
}

func loadCRDs(file string, into map[schema.GroupVersionKind]crdVersion) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	docs, err := splitDocs(data)
	if err != nil {
		return err
	}
	for _, d := range docs {
		var crd apiextv1.CustomResourceDefinition
		if err := yaml.Unmarshal(d, &crd); err != nil {
			return err
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			var internal apiextensions.JSONSchemaProps
			if err := apiextv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
				return fmt.Errorf("%s %s: %w", crd.Name, v.Name, err)
			}
			validator, _, err := validation.NewSchemaValidator(&internal)
			if err != nil {
				return fmt.Errorf("%s %s: %w", crd.Name, v.Name, err)
			}
			structural, err := structuralschema.NewStructural(&internal)
			if err != nil {
				return fmt.Errorf("%s %s: %w", crd.Name, v.Name, err)
			}
			gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
			into[gvk] = crdVersion{validator: validator, structural: structural}
		}
	}
	return nil
}

func checkStream(name string, data []byte, crds map[schema.GroupVersionKind]crdVersion) bool {
	docs, err := splitDocs(data)
	if err != nil {
		fmt.Printf("%s: not YAML: %v\n", name, err)
		return false
	}
	strict := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	ok := true
	for i, d := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(d, &u.Object); err != nil {
			fmt.Printf("%s[%d]: not YAML: %v\n", name, i, err)
			ok = false
			continue
		}
		gvk := u.GroupVersionKind()
		what := fmt.Sprintf("%s %s/%s", gvk.GroupVersion().String(), gvk.Kind, u.GetName())
		var problems []string

		meta := u.GetNamespace() != "" || isNamespaced(gvk)
		for _, e := range metavalidation.ValidateObjectMetaAccessor(u, meta, metavalidation.NameIsDNSSubdomain, field.NewPath("metadata")) {
			problems = append(problems, e.Error())
		}

		if scheme.Scheme.Recognizes(gvk) {
			obj, _, err := strict.Decode(d, nil, nil)
			if err != nil {
				problems = append(problems, err.Error())
			} else {
				problems = append(problems, checkTyped(obj)...)
			}
		} else if crd, found := crds[gvk]; found {
			obj := runtime.DeepCopyJSON(u.Object)
			unknown := pruning.PruneWithOptions(obj, crd.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
			for _, f := range unknown {
				problems = append(problems, fmt.Sprintf("unknown field %q", f))
			}
			for _, e := range validation.ValidateCustomResource(nil, u.Object, crd.validator) {
				problems = append(problems, e.Error())
			}
		} else {
			problems = append(problems, "no Kubernetes type and no CRD (-crd) for this kind")
		}

		if len(problems) == 0 {
			fmt.Printf("ok      %s\n", what)
		} else {
			ok = false
			for _, p := range problems {
				fmt.Printf("INVALID %s: %s\n", what, p)
			}
		}
	}
	return ok
}

func isNamespaced(gvk schema.GroupVersionKind) bool {
	switch gvk.Kind {
	case "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume", "StorageClass", "PriorityClass", "RuntimeClass":
		return false
	}
	return true
}

func checkTyped(obj runtime.Object) []string {
	var sel *metav1.LabelSelector
	var tmpl *corev1.PodTemplateSpec
	switch o := obj.(type) {
	case *appsv1.Deployment:
		sel, tmpl = o.Spec.Selector, &o.Spec.Template
	case *appsv1.StatefulSet:
		sel, tmpl = o.Spec.Selector, &o.Spec.Template
		if o.Spec.ServiceName == "" {
			return []string{"spec.serviceName: required for a StatefulSet's stable network identity"}
		}
	case *appsv1.DaemonSet:
		sel, tmpl = o.Spec.Selector, &o.Spec.Template
	default:
		return nil
	}
	var problems []string
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		problems = append(problems, "spec.selector: required")
	} else if s, err := metav1.LabelSelectorAsSelector(sel); err != nil {
		problems = append(problems, "spec.selector: "+err.Error())
	} else if !s.Matches(labels.Set(tmpl.Labels)) {
		problems = append(problems, "spec.selector does not match spec.template.metadata.labels")
	}
	containers := append(append([]corev1.Container{}, tmpl.Spec.InitContainers...), tmpl.Spec.Containers...)
	if len(tmpl.Spec.Containers) == 0 {
		problems = append(problems, "spec.template.spec.containers: required")
	}
	volumes := map[string]bool{}
	for _, v := range tmpl.Spec.Volumes {
		volumes[v.Name] = true
	}
	for _, c := range containers {
		ports := map[string]bool{}
		for _, p := range c.Ports {
			ports[p.Name] = true
		}
		for what, p := range map[string]*corev1.Probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
			if p != nil && p.HTTPGet != nil && p.HTTPGet.Port.StrVal != "" && !ports[p.HTTPGet.Port.StrVal] {
				problems = append(problems, fmt.Sprintf("container %s: %s names port %q, which the container does not declare", c.Name, what, p.HTTPGet.Port.StrVal))
			}
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				problems = append(problems, fmt.Sprintf("container %s: volumeMount %q has no volume", c.Name, m.Name))
			}
		}
	}
	return problems
}
