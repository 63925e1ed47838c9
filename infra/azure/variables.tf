variable "subscription_id" {
  description = "Azure subscription to deploy into."
  type        = string
}

variable "prefix" {
  description = "Short lowercase name prefix for every resource (letters and digits; storage and registry names must be globally unique)."
  type        = string
  default     = "defectflow"
}

variable "location" {
  description = "Azure region."
  type        = string
  default     = "westeurope"
}

variable "aks_node_size" {
  description = "VM size of the AKS system/user node pool (CPU inference: ONNX Runtime, no GPU needed)."
  type        = string
  default     = "Standard_D4s_v5"
}

variable "aks_node_count" {
  description = "Minimum node count; the cluster autoscaler may add up to aks_max_nodes."
  type        = number
  default     = 2
}

variable "aks_max_nodes" {
  description = "Maximum node count of the autoscaled pool."
  type        = number
  default     = 5
}

variable "postgres_sku" {
  description = "PostgreSQL flexible server SKU (results database and MLflow backend store)."
  type        = string
  default     = "GP_Standard_D2ds_v5"
}

variable "postgres_admin" {
  description = "PostgreSQL administrator login (the password is generated and kept in the Terraform state: use a remote, encrypted backend)."
  type        = string
  default     = "defectflowadmin"
}
